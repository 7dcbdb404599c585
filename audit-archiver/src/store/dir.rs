//! A local directory as a [`SegmentStore`]: each object is written to a
//! temporary file, fsynced, hard-linked to its name (which fails if the name
//! exists, so nothing is ever replaced), and the directory fsynced.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{SegmentStore, StoreError};

/// Segments in a directory.
#[derive(Clone, Debug)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// The store in `dir`, created (mode 0700) if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| failed("create", &dir, &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(DirStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn failed(action: &str, path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Failed(format!("failed to {action} {}: {e}", path.display()))
}

fn valid_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        return Err(StoreError::Failed(format!(
            "{name:?} is not a plain object name"
        )));
    }
    Ok(())
}

#[async_trait]
impl SegmentStore for DirStore {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| failed("list", &dir, &e))? {
                let entry = entry.map_err(|e| failed("list", &dir, &e))?;
                if let Some(name) = entry.file_name().to_str()
                    && !name.starts_with('.')
                {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        })
        .await
        .map_err(|e| StoreError::Failed(e.to_string()))?
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        valid_name(name)?;
        let path = self.dir.join(name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(name.to_owned()))
            }
            Err(e) => Err(failed("read", &path, &e)),
        }
    }

    async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        valid_name(name)?;
        let dir = self.dir.clone();
        let name = name.to_owned();
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || write_durably(&dir, &name, &bytes))
            .await
            .map_err(|e| StoreError::Failed(e.to_string()))?
    }
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write as _;
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp).map_err(|e| failed("create", &temp, &e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| failed("write", &temp, &e))?;
        match std::fs::hard_link(&temp, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(name.to_owned()));
            }
            Err(e) => return Err(failed("link", &target, &e)),
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| failed("sync", dir, &e))
    })();
    let _ = std::fs::remove_file(&temp);
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn objects_are_written_once_and_read_back() {
        let temp = tempfile::tempdir().unwrap();
        let store = DirStore::open(temp.path().join("archive")).unwrap();
        store.put("a", b"one").await.unwrap();
        assert_eq!(store.get("a").await.unwrap(), b"one");
        assert!(matches!(
            store.put("a", b"two").await,
            Err(StoreError::Exists(_))
        ));
        assert_eq!(store.get("a").await.unwrap(), b"one");
        assert!(matches!(store.get("b").await, Err(StoreError::NotFound(_))));
        assert_eq!(store.list().await.unwrap(), ["a"]);
        for bad in ["../x", "", ".hidden", "a/b"] {
            assert!(store.put(bad, b"x").await.is_err(), "{bad}");
        }
    }
}
