//! Follows the local kube-apiserver's log file (the test harness writes it
//! to a file, not a pipe) and prints its lines with the `apiserver` prefix.
//!
//! The apiserver logs a lot at start-up; by default only klog's warnings
//! and errors (`W…`, `E…`, `F…`) are shown, `--verbose` shows every line.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use super::logs::Style;

/// How often the file is read for new lines.
const POLL: Duration = Duration::from_millis(250);

/// Whether a klog line is shown without `--verbose`.
pub fn is_notable(line: &str) -> bool {
    // klog: a level letter, then MMDD (`W1128 16:01:02.123456 ...`).
    let mut chars = line.chars();
    let warning =
        matches!(chars.next(), Some('W' | 'E' | 'F')) && chars.take(4).all(|c| c.is_ascii_digit());
    warning && !NOISE.iter().any(|noise| line.contains(noise))
}

/// Warnings every local apiserver logs and nobody can act on.
const NOISE: &[&str] = &[
    // API versions compiled in without resources.
    "because it has no resources",
    // etcd connections retried while etcd starts.
    "grpc: addrConn.createTransport failed",
];

/// Follows `path` from its current end (the start-up lines are not news)
/// until the returned task is aborted or the file goes away.
pub fn follow(path: PathBuf, style: Style, verbose: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut partial = String::new();
        loop {
            tokio::time::sleep(POLL).await;
            let Ok(mut file) = std::fs::File::open(&path) else {
                return;
            };
            if file.seek(SeekFrom::Start(offset)).is_err() {
                return;
            }
            let mut chunk = Vec::new();
            let Ok(read) = file.read_to_end(&mut chunk) else {
                return;
            };
            offset += read as u64;
            partial.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                let line = line.trim_end();
                if verbose || is_notable(line) {
                    style.print("apiserver", line);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_errors_are_notable_info_is_not() {
        assert!(is_notable("W1128 16:01:02.123456   123 foo.go:1] careful"));
        assert!(is_notable("E1128 16:01:02.123456   123 foo.go:1] broken"));
        assert!(!is_notable("I1128 16:01:02.123456   123 foo.go:1] fine"));
        assert!(!is_notable("Waiting for caches"));
        assert!(!is_notable(""));
        assert!(!is_notable(
            "W1128 16:03:56.424384   21566 genericapiserver.go:787] Skipping API apps/v1beta1 because it has no resources."
        ));
    }
}
