//! The harness against its real control plane: readiness, namespaces, RBAC
//! through impersonation, CRD install, server-side apply, clients from many
//! test runtimes, and teardown — including when the test process panics or
//! is killed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};

use agentauth_testenv::{ControlPlane, TEST_NAMESPACE_LABEL, shared};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.agentauth.dev
spec:
  group: testenv.agentauth.dev
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 0}
              colour: {type: string}
"#;

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test]
async fn starts_and_answers_readyz() -> TestResult {
    let cp = shared().await;
    if let Some(took) = cp.started_in() {
        println!("control plane ready {took:?} after spawning etcd");
    }
    let client = cp.client()?;
    let mut request = http::Request::new(Vec::new());
    *request.uri_mut() = http::Uri::from_static("/readyz");
    assert_eq!(client.request_text(request).await?.trim(), "ok");
    if cp.is_local() {
        let version = client.apiserver_version().await?;
        // setup.sh stamps the version; an unstamped build says v0.0.0-master.
        assert_eq!(version.major, "1", "{version:?}");
        assert!(!version.git_version.starts_with("v0.0.0"), "{version:?}");
        assert!(cp.admin_token().is_some_and(|t| !t.is_empty()));
        assert!(cp.kubeconfig_path().is_file());
    }
    Ok(())
}

#[tokio::test]
async fn creates_and_lists_namespaces() -> TestResult {
    let cp = shared().await;
    let first = cp.test_namespace("creates_and_lists").await?;
    let second = cp.test_namespace("creates_and_lists").await?;
    assert_ne!(first, second);
    assert!(first.starts_with("creates-and-lists-"), "{first}");

    let labelled = Api::<Namespace>::all(cp.client()?)
        .list(&ListParams::default().labels(&format!("{TEST_NAMESPACE_LABEL}=true")))
        .await?;
    let names: Vec<_> = labelled
        .items
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    assert!(
        names.contains(&first.as_str()) && names.contains(&second.as_str()),
        "{names:?}"
    );
    Ok(())
}

#[tokio::test]
async fn rbac_applies_to_impersonated_users() -> TestResult {
    let cp = shared().await;
    let ns = cp.test_namespace("rbac").await?;
    let admin = cp.client()?;
    let as_mallory = Api::<Secret>::namespaced(cp.client_as("mallory", &["agentauth:tests"])?, &ns);

    // The attack: an unprivileged user reads secrets. The apiserver refuses.
    let refused = as_mallory.list(&ListParams::default()).await;
    assert_eq!(
        refused.as_ref().err().and_then(status_code),
        Some(403),
        "{refused:?}"
    );
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default())
        .await?;

    // A RoleBinding for the group lets the same impersonated identity in: real RBAC.
    let role = Role {
        metadata: ObjectMeta {
            name: Some("read-secrets".into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            verbs: vec!["list".into()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await?;
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("read-secrets".into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "read-secrets".into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            name: "agentauth:tests".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin, &ns)
        .create(&PostParams::default(), &binding)
        .await?;
    // The RBAC authorizer reads bindings from its own watch cache, so a new
    // binding takes effect a moment after it is stored: wait for it, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match as_mallory.list(&ListParams::default()).await {
            Ok(_) => return Ok(()),
            Err(e) if status_code(&e) == Some(403) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[tokio::test]
async fn installs_crds_and_server_side_applies_custom_objects() -> TestResult {
    let cp = shared().await;

    let empty = tempfile::tempdir()?;
    assert!(cp.install_crds(empty.path()).await?.is_empty());
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("widget.yaml"), WIDGET_CRD)?;
    std::fs::write(dir.path().join("README.md"), "not a CRD")?;
    assert_eq!(
        cp.install_crds(dir.path()).await?,
        ["widgets.testenv.agentauth.dev"]
    );
    // Installing again (as every test may) is a no-op apply.
    assert_eq!(cp.install_crds_yaml(WIDGET_CRD).await?.len(), 1);

    let ns = cp.test_namespace("ssa").await?;
    let widget_type = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("testenv.agentauth.dev", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(cp.client()?, &ns, &widget_type);
    let widget = |size: i64| {
        serde_json::json!({
            "apiVersion": "testenv.agentauth.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": size},
        })
    };
    widgets
        .patch(
            "w",
            &PatchParams::apply("writer-a"),
            &Patch::Apply(widget(3)),
        )
        .await?;

    // A second manager changing a field it does not own conflicts, unless it forces.
    let conflict = widgets
        .patch(
            "w",
            &PatchParams::apply("writer-b"),
            &Patch::Apply(widget(5)),
        )
        .await;
    assert_eq!(
        conflict.as_ref().err().and_then(status_code),
        Some(409),
        "{conflict:?}"
    );
    let forced = widgets
        .patch(
            "w",
            &PatchParams::apply("writer-b").force(),
            &Patch::Apply(widget(5)),
        )
        .await?;
    assert_eq!(forced.data["spec"]["size"], 5);

    // The schema is enforced by the apiserver.
    let rejected = widgets
        .patch(
            "w",
            &PatchParams::apply("writer-b").force(),
            &Patch::Apply(widget(-1)),
        )
        .await;
    assert_eq!(
        rejected.as_ref().err().and_then(status_code),
        Some(422),
        "{rejected:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_from_many_runtimes() -> TestResult {
    // Every test here runs on its own runtime yet shares one control plane;
    // this one adds a multi-thread runtime and two clients used at once.
    let cp = shared().await;
    let (a, b) = (cp.client()?, cp.client()?);
    let (va, vb) = tokio::try_join!(a.apiserver_version(), b.apiserver_version())?;
    assert_eq!(va.git_version, vb.git_version);
    Ok(())
}

#[tokio::test]
async fn dropping_stops_the_servers_and_removes_the_files() -> TestResult {
    let cp = ControlPlane::start().await?;
    if !cp.is_local() {
        return Ok(());
    }
    let work_dir = work_dir_of(cp.kubeconfig_path());
    let port = port_of(&cp.server_url());
    cp.client()?.apiserver_version().await?;
    let stopping = Instant::now();
    drop(cp);
    println!("control plane stopped in {:?}", stopping.elapsed());
    assert!(!work_dir.exists(), "{} still exists", work_dir.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert_eq!(processes_mentioning(&work_dir), Vec::<String>::new());
    Ok(())
}

/// Child mode of [`no_orphans_when_the_test_process_dies`]: starts the shared
/// control plane, reports where it lives, then dies as told.
#[tokio::test]
#[ignore = "run as a child process by no_orphans_when_the_test_process_dies"]
async fn child_holding_the_shared_control_plane() -> TestResult {
    let Some(report) = std::env::var_os("TESTENV_CHILD_REPORT") else {
        return Ok(());
    };
    let cp = shared().await;
    let mut file = std::fs::File::create(report)?;
    writeln!(
        file,
        "{}\n{}",
        cp.kubeconfig_path().display(),
        cp.server_url()
    )?;
    drop(file);
    if std::env::var("TESTENV_CHILD_MODE").as_deref() == Ok("panic") {
        // The way a failing assertion ends a test; libtest then exits the process.
        std::panic::resume_unwind(Box::new("child test fails on purpose"));
    }
    // Otherwise wait to be killed with SIGKILL.
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

#[tokio::test]
async fn no_orphans_when_the_test_process_dies() -> TestResult {
    if std::env::var_os(agentauth_testenv::EXISTING_KUBECONFIG_ENV).is_some() {
        return Ok(());
    }
    for mode in ["panic", "sigkill"] {
        let scratch = tempfile::tempdir()?;
        let report = scratch.path().join("report");
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "child_holding_the_shared_control_plane",
                "--ignored",
                "--nocapture",
            ])
            .env("TESTENV_CHILD_REPORT", &report)
            .env("TESTENV_CHILD_MODE", mode)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let (kubeconfig, server) = loop {
            if let Ok(text) = std::fs::read_to_string(&report)
                && let [kubeconfig, server] = text.lines().collect::<Vec<_>>()[..]
            {
                break (PathBuf::from(kubeconfig), server.to_owned());
            }
            assert!(
                Instant::now() < deadline,
                "{mode}: the child never reported"
            );
            assert!(
                child.try_wait()?.is_none() || report.exists(),
                "{mode}: the child exited early"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if mode == "sigkill" {
            child.kill()?;
        }
        child.wait()?;

        // The watchdogs see their lifeline close, stop the servers and clean up.
        let work_dir = work_dir_of(&kubeconfig);
        let port = port_of(&server);
        let deadline = Instant::now() + Duration::from_secs(15);
        while work_dir.exists() || !processes_mentioning(&work_dir).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{mode}: left behind {} and {:?}",
                work_dir.display(),
                processes_mentioning(&work_dir)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{mode}: port {port} open"
        );
    }
    Ok(())
}

/// The control plane's temporary folder: the kubeconfig is in `<root>/apiserver/`.
fn work_dir_of(kubeconfig: &Path) -> PathBuf {
    kubeconfig
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn port_of(server: &str) -> u16 {
    server
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Command lines of live processes that name `dir` (the servers and their watchdogs).
fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&needle))
        .collect()
}
