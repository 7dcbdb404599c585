//! A `moto_server` (the AWS API emulator) on a free loopback port, for the
//! AWS KMS signer's tests, under the same lifeline watchdog as the control
//! plane (see `process.rs`): it dies with the test process.
//!
//! The executable is `AGENTAUTH_MOTO_SERVER`, else
//! `$AGENTAUTH_CACHE/venv/bin/moto_server`, else
//! `~/.cache/agentauth/venv/bin/moto_server`; install it with
//! `python3 -m venv ~/.cache/agentauth/venv && ~/.cache/agentauth/venv/bin/pip install 'moto[server]'`.
//!
//! moto (5.2 and earlier) ignores KMS `Sign`'s `MessageType=DIGEST` and
//! hashes the digest again, so the signature fails against the public key
//! where AWS's would pass (getmoto/moto#10202 fixes it). The server is
//! therefore started through the Python interpreter of the `moto_server`
//! script with [`DIGEST_SHIM`], which signs a `DIGEST` message as the
//! prehashed value it is — only when the installed moto lacks the fix.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::Error;
use crate::process::Supervised;

/// Names the `moto_server` executable, overriding the venv locations.
pub const MOTO_SERVER_ENV: &str = "AGENTAUTH_MOTO_SERVER";

/// How long moto may take from spawn to its first answer (it imports every
/// AWS service model on start; about a second on this machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Python run in place of the `moto_server` script: patches KMS `Sign` to
/// honour `MessageType=DIGEST` for ECDSA keys when moto does not, then runs
/// moto's own `main`.
pub const DIGEST_SHIM: &str = r#"
import inspect, sys, threading
from moto.kms import models, responses, utils
if "message_type" not in inspect.signature(models.KmsBackend.sign).parameters:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    state = threading.local()
    sign_response = responses.KmsResponse.sign
    ecdsa_sign = utils.ECDSAPrivateKey.sign
    def patched_response(self):
        state.digest = self._get_param("MessageType") == "DIGEST"
        try:
            return sign_response(self)
        finally:
            state.digest = False
    def patched_ecdsa(self, message, signing_algorithm):
        if not getattr(state, "digest", False):
            return ecdsa_sign(self, message, signing_algorithm)
        utils.validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
        algorithm = {"ECDSA_SHA_256": hashes.SHA256(), "ECDSA_SHA_384": hashes.SHA384(),
                     "ECDSA_SHA_512": hashes.SHA512()}[signing_algorithm]
        return self.private_key.sign(message, ec.ECDSA(Prehashed(algorithm)))
    responses.KmsResponse.sign = patched_response
    utils.ECDSAPrivateKey.sign = patched_ecdsa
from moto.server import main
sys.argv[0] = "moto_server"
sys.exit(main(sys.argv[1:]))
"#;

/// A running `moto_server`; stopped when dropped or when the test process ends.
#[derive(Debug)]
pub struct MotoServer {
    endpoint: String,
    root: PathBuf,
    process: Supervised,
}

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p <free port>` and waits until it
    /// answers HTTP.
    pub async fn start() -> Result<Self, Error> {
        let executable = moto_server_path()?;
        let root_dir = tempfile::Builder::new()
            .prefix("agentauth-moto-")
            .tempdir()
            .map_err(|source| Error::Io {
                action: "create a temporary folder in",
                path: std::env::temp_dir(),
                source,
            })?;
        let dir = root_dir.path().join("moto");
        std::fs::create_dir(&dir).map_err(|source| Error::Io {
            action: "create the folder",
            path: dir.clone(),
            source,
        })?;
        let port = free_port()?;
        let (program, mut args) = launcher(&executable);
        args.extend(["-H", "127.0.0.1", "-p"].map(OsString::from));
        args.push(port.to_string().into());
        let mut process =
            Supervised::spawn("moto_server", &program, &args, dir.join("moto.log"), &dir)?;
        wait_until_answering(&mut process, port).await?;
        let endpoint = format!("http://127.0.0.1:{port}");
        tracing::info!(%endpoint, "moto_server ready");
        Ok(MotoServer {
            endpoint,
            root: root_dir.keep(),
            process,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`: the SDK's endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.process.stop();
        // The watchdog removes the folder too; this makes it synchronous.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The moto server of this test binary, or the message of its failed start.
static SHARED_MOTO: OnceCell<Result<MotoServer, String>> = OnceCell::const_new();

/// One `moto_server` shared by every test of this binary, started on first
/// use; tests keep apart by creating their own keys. A failed start is
/// remembered and returned to every later caller.
pub async fn shared_moto() -> Result<&'static MotoServer, Error> {
    SHARED_MOTO
        .get_or_init(|| async {
            MotoServer::start()
                .await
                .map_err(|e| crate::error::chain(&e))
        })
        .await
        .as_ref()
        .map_err(|message| Error::SharedStartFailed(message.clone()))
}

/// `AGENTAUTH_MOTO_SERVER`, `$AGENTAUTH_CACHE/venv/bin/moto_server` or
/// `~/.cache/agentauth/venv/bin/moto_server`, which must exist.
pub fn moto_server_path() -> Result<PathBuf, Error> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let path = match (non_empty(MOTO_SERVER_ENV), non_empty("AGENTAUTH_CACHE")) {
        (Some(path), _) => PathBuf::from(path),
        (None, Some(cache)) => PathBuf::from(cache).join("venv/bin/moto_server"),
        (None, None) => PathBuf::from(non_empty("HOME").unwrap_or_default())
            .join(".cache/agentauth/venv/bin/moto_server"),
    };
    if path.is_file() {
        return Ok(path);
    }
    Err(Error::Spawn {
        process: "moto_server",
        source: std::io::Error::new(
            ErrorKind::NotFound,
            format!(
                "{} does not exist; set {MOTO_SERVER_ENV}, or install it with `python3 -m venv \
                 ~/.cache/agentauth/venv && ~/.cache/agentauth/venv/bin/pip install 'moto[server]'`",
                path.display()
            ),
        ),
    })
}

/// The interpreter of a Python `moto_server` script (from its `#!` line)
/// running [`DIGEST_SHIM`]; any other executable runs as it is.
fn launcher(executable: &Path) -> (PathBuf, Vec<OsString>) {
    let first_line = std::fs::read(executable)
        .ok()
        .and_then(|bytes| {
            let line = bytes.split(|&b| b == b'\n').next()?.to_vec();
            String::from_utf8(line).ok()
        })
        .unwrap_or_default();
    let mut shebang = first_line
        .strip_prefix("#!")
        .unwrap_or_default()
        .split_whitespace();
    match shebang.next() {
        Some(interpreter) if first_line.contains("python") => {
            let mut args: Vec<OsString> = shebang.map(OsString::from).collect();
            args.push("-c".into());
            args.push(DIGEST_SHIM.into());
            (PathBuf::from(interpreter), args)
        }
        _ => (executable.to_path_buf(), Vec::new()),
    }
}

/// Reserves a free loopback port, then frees it for moto.
fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(Error::NoFreePort)?;
    Ok(listener.local_addr().map_err(Error::NoFreePort)?.port())
}

/// Waits until moto answers an HTTP request, failing early if it exits.
async fn wait_until_answering(process: &mut Supervised, port: u16) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        process.check_running()?;
        let last_error = match probe(port).await {
            Ok(()) => return Ok(()),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > READY_TIMEOUT {
            return Err(process.not_ready(started.elapsed(), last_error));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One `GET /moto-api/` over HTTP/1.0; any HTTP status line counts as up.
/// Blocking I/O on the blocking pool: the workspace's tokio has no `io-util`.
async fn probe(port: u16) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let timeout = Duration::from_secs(2);
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut head = [0_u8; 8];
        stream.read_exact(&mut head)?;
        if head.starts_with(b"HTTP/1.") {
            Ok(())
        } else {
            Err(std::io::Error::other("not an HTTP answer"))
        }
    })
    .await
    .map_err(std::io::Error::other)?
}
