//! Finds the `etcd` and `kube-apiserver` binaries, the envtest way: the folder
//! named by `KUBEBUILDER_ASSETS`, else the folder `e2e/control-plane/setup.sh`
//! prints (building them from Go modules on the first run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

/// The two server binaries of a control plane.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) etcd: PathBuf,
    pub(crate) kube_apiserver: PathBuf,
}

/// Locates the binaries; may take minutes when `setup.sh` has to build them.
pub(crate) async fn locate() -> Result<Binaries, Error> {
    let folder = match std::env::var_os("KUBEBUILDER_ASSETS") {
        Some(folder) if !folder.is_empty() => PathBuf::from(folder),
        _ => tokio::task::spawn_blocking(run_setup_script)
            .await
            .map_err(|e| Error::SetupScript {
                status: format!("the task running it failed: {e}"),
            })??,
    };
    Ok(Binaries {
        etcd: executable(&folder, "etcd")?,
        kube_apiserver: executable(&folder, "kube-apiserver")?,
    })
}

fn executable(folder: &Path, binary: &'static str) -> Result<PathBuf, Error> {
    let path = folder.join(binary);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingBinary {
            folder: folder.to_path_buf(),
            binary,
        })
    }
}

/// Runs `setup.sh`, letting its progress through to stderr (a first build takes
/// minutes and should say so), and returns the folder it prints on stdout.
fn run_setup_script() -> Result<PathBuf, Error> {
    let script = crate::repo_root().join("e2e/control-plane/setup.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::SetupScript {
            status: format!("could not run {}: {e}", script.display()),
        })?;
    if !output.status.success() {
        return Err(Error::SetupScript {
            status: output.status.to_string(),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().rev().find(|line| !line.trim().is_empty()) {
        Some(folder) => Ok(PathBuf::from(folder.trim())),
        None => Err(Error::SetupScript {
            status: "it printed no folder".to_owned(),
        }),
    }
}
