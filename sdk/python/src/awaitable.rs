//! Rust futures as asyncio awaitables, with a clean interpreter exit.
//!
//! ```text
//!  call (GIL held) ─▶ loop.create_future() ─▶ spawn on the tokio runtime ─▶ return the asyncio future
//!  tokio task ─▶ future.await (no GIL) ─▶ spawn_blocking: try_attach ─▶ loop.call_soon_threadsafe(
//!                                                         _bridge.complete, fut, ok, value)
//!  fut cancelled in Python ─▶ done callback ─▶ abort the tokio task
//!  interpreter exit ─▶ atexit: _drain() waits (GIL released) until no task is still delivering
//! ```
//!
//! Why not `pyo3-async-runtimes`: its completion step attaches to Python
//! from a blocking thread that nothing waits for, and a short script that
//! exited right after an SDK call crashed the interpreter in 2 of 5 runs
//! (`PyGILState_Release … finalizing`). Counting the tasks in flight and
//! draining them at exit (and `try_attach`, which refuses a finalizing
//! interpreter) removes that race.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::IntoPyObjectExt as _;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::task::AbortHandle;

use crate::errors::to_py;

/// Tasks spawned and not yet done delivering their result.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counts one task in flight while it lives.
struct InFlight;

impl InFlight {
    fn new() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The runtime every SDK call runs on: two workers are plenty for an
/// agent's handful of concurrent requests.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("agentauth-sdk")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the SDK's runtime: {e}")))
}

/// Aborts the tokio task when its asyncio future is cancelled.
#[pyclass(frozen)]
struct Canceller {
    handle: AbortHandle,
}

#[pymethods]
impl Canceller {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.handle.abort();
        }
        Ok(())
    }
}

/// Runs `fut` on the SDK's runtime; returns an asyncio future of the
/// running loop that completes with its value or its mapped exception.
pub fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = agentauth::Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let py_future = event_loop.call_method0("create_future")?;
    let complete = py
        .import("agentauth._bridge")?
        .getattr("complete")?
        .unbind();
    let (event_loop, future) = (event_loop.unbind(), py_future.clone().unbind());
    let in_flight = InFlight::new();
    let task = runtime()?.spawn(async move {
        let result = fut.await;
        let deliver = move || {
            let _in_flight = in_flight;
            Python::try_attach(|py| {
                let (ok, value) = match result {
                    Ok(value) => match value.into_py_any(py) {
                        Ok(value) => (true, value),
                        Err(e) => (false, e.into_value(py).into_any()),
                    },
                    Err(e) => (false, to_py(py, &e).into_value(py).into_any()),
                };
                // A closed loop has nobody left to tell.
                let _ = event_loop
                    .bind(py)
                    .call_method1("call_soon_threadsafe", (complete, future, ok, value));
            });
        };
        let _ = tokio::task::spawn_blocking(deliver).await;
    });
    py_future.call_method1(
        "add_done_callback",
        (Canceller {
            handle: task.abort_handle(),
        },),
    )?;
    Ok(py_future)
}

/// Waits, without holding the GIL, until no task is delivering a result
/// (at most `timeout` seconds). Registered with `atexit`.
#[pyfunction]
pub fn _drain(py: Python<'_>, timeout: f64) {
    let deadline = Instant::now() + Duration::try_from_secs_f64(timeout).unwrap_or_default();
    py.detach(|| {
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}
