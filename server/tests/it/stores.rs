//! The durable run stores, each for real: PostgreSQL in a cluster these
//! tests make and start (Debian's `postgresql` package; `cargo xtask test` installs
//! it), SQLite in a file. On each, three `flowbench-server` processes answer
//! GET and stop for each other's runs, and a server killed with SIGKILL
//! under load loses no run whose answer a client received. Without
//! PostgreSQL its tests fail and say so: they never pass by skipping.

use crate::support::{TestClient, read_until};
use mock::fixtures::APPS;
use mock::{MockLlm, Reply, Script};
use serde_json::{Value, json};
use server::sse::SseParser;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A PostgreSQL cluster in a temporary folder, on a free port, stopped and
/// removed on drop.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    pub url: String,
}

fn as_postgres(bin: &std::path::Path, program: &str) -> Command {
    // initdb and postgres refuse to run as root: as root, run them as `postgres`.
    if unsafe_is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

impl Postgres {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| versions.filter_map(Result::ok).map(|v| v.path().join("bin")).find(|b| b.join("initdb").exists()))
            .expect(
                "PostgreSQL is not installed: the run store's tests need its server (apt-get install postgresql; cargo xtask test does)",
            );
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("flowbench-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if unsafe_is_root() {
            assert!(Command::new("chown").args(["postgres:postgres"]).arg(&dir).status().unwrap().success());
        }
        let data = dir.join("data");
        let out = as_postgres(&bin, "initdb").arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]).output().unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100", dir.display());
        let out = as_postgres(&bin, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.join("log"))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
        Self { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir, bin }
    }

    /// Restarts the server (every connection to it drops) with the options
    /// it was started with. Its log goes to the file, not to a pipe this
    /// process would wait on for as long as the server lives.
    fn restart(&self) {
        let out = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-m", "fast", "-w", "restart"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl restart: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin, "pg_ctl").arg("-D").arg(self.dir.join("data")).args(["-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `flowbench-server` process on `store`, serving the fixture apps against `mock`.
struct Replica {
    child: std::process::Child,
    url: String,
}

impl Replica {
    async fn start(store: &str, mock: &MockLlm) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowbench-server"));
        command.args(["--listen", &format!("127.0.0.1:{port}"), "--store", store, "--provider-base-url", &mock.base_url()]);
        for app in APPS {
            command.arg("--app").arg(format!("{}={}", app.api_key, mock::workspace_root().join(app.workflow).display()));
        }
        let child = command.stdout(std::process::Stdio::null()).spawn().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "a replica did not listen within 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, url }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn key(name: &str) -> &'static str {
    APPS.iter().find(|a| a.name == name).unwrap().api_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_postgresql_answer_get_and_stop_for_each_others_runs() {
    let pg = Postgres::start();
    three_replicas_answer_get_and_stop_for_each_others_runs(&pg.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_on_one_sqlite_file_answer_get_and_stop_for_each_others_runs() {
    let dir = tempfile::tempdir().unwrap();
    three_replicas_answer_get_and_stop_for_each_others_runs(&sqlite(&dir)).await;
}

/// A run's node executions, read from the store's table itself.
async fn node_executions(store: &str, run_id: &str) -> Value {
    let text: String = if let Some(path) = store.strip_prefix("sqlite:") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT node_executions FROM flowbench_runs WHERE id = ?1", [run_id], |r| r.get(0)).unwrap()
    } else {
        let (client, connection) = tokio_postgres::connect(store, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let id = uuid::Uuid::parse_str(run_id).unwrap();
        client.query_one("SELECT node_executions FROM flowbench_runs WHERE id = $1", &[&id]).await.unwrap().get(0)
    };
    serde_json::from_str(&text).unwrap()
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("runs.db").display())
}

async fn three_replicas_answer_get_and_stop_for_each_others_runs(store: &str) {
    // Streams long enough to stop: 200 tokens, 20 ms apart.
    let script = Script { reply: Reply::Tokens(200), inter_token_delay: Duration::from_millis(20), ..Script::default() };
    let mock = MockLlm::start(script, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Replica::start(store, &mock).await);
    }
    let clients: Vec<TestClient> = replicas.iter().map(|r| TestClient::new(&r.url)).collect();
    // A blocking run on the first, read from the others.
    let run = clients[0].run(key("empty"), &json!({"inputs": {"question": "hi"}, "response_mode": "blocking", "user": "u1"})).await;
    assert_eq!(run.status, 200, "{}", run.text());
    let id = run.json()["workflow_run_id"].as_str().unwrap().to_owned();
    for client in &clients[1..] {
        let auth = format!("Bearer {}", key("empty"));
        let got = client.send("GET", &format!("/v1/workflows/run/{id}"), &[("authorization", &auth)], "").await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.json()["status"], "succeeded");
        assert_eq!(got.json()["id"], id.as_str());
    }
    // Its record holds its node executions, as Dify's workflow_node_executions.
    let nodes = node_executions(store, &id).await;
    let types: Vec<&str> = nodes.as_array().unwrap().iter().map(|n| n["node_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["start", "end"], "{nodes}");
    for (i, node) in nodes.as_array().unwrap().iter().enumerate() {
        assert_eq!(node["index"], i + 1);
        assert_eq!(node["status"], "succeeded", "{node}");
        assert!(node["created_at"].as_i64().unwrap() > 0 && node["finished_at"].as_i64() >= node["created_at"].as_i64());
    }
    // A stream on the first, stopped through the third.
    let mut stream =
        clients[0].open_stream(key("llm"), &json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": "u2"})).await;
    let mut parser = SseParser::new();
    let started = read_until(stream.body_mut(), &mut parser, |e| e["event"] == "text_chunk").await;
    let task_id = started[0]["task_id"].as_str().unwrap().to_owned();
    let run_id = started[0]["workflow_run_id"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {}", key("llm"));
    let asked = Instant::now();
    let stop = clients[2]
        .send(
            "POST",
            &format!("/v1/workflows/tasks/{task_id}/stop"),
            &[("authorization", &auth), ("content-type", "application/json")],
            r#"{"user":"u2"}"#,
        )
        .await;
    assert_eq!(stop.status, 200, "{}", stop.text());
    let end = read_until(stream.body_mut(), &mut parser, |e| e["event"] == "workflow_finished").await;
    let latency = asked.elapsed();
    assert_eq!(end.last().unwrap()["data"]["status"], "stopped", "stopped through another replica");
    // Printed, not asserted: the machine is shared.
    println!("{}: stop through another replica: {latency:?} from the request to workflow_finished", store.split(':').next().unwrap());
    // The record says so on the second.
    let got = clients[1].send("GET", &format!("/v1/workflows/run/{run_id}"), &[("authorization", &auth)], "").await;
    assert_eq!(got.json()["status"], "stopped", "{}", got.text());
    let nodes = node_executions(store, &run_id).await;
    let last = nodes.as_array().unwrap().last().unwrap();
    assert_eq!((last["node_type"].as_str(), last["status"].as_str()), (Some("llm"), Some("stopped")), "{nodes}");
    assert!(last["elapsed_time"].as_f64().unwrap() > 0.0, "the LLM node is timed: {last}");
    // A NUL, which PostgreSQL's text cannot hold, is left out of the
    // record, and the store goes on storing (the same in SQLite).
    let nul =
        clients[0].run(key("empty"), &json!({"inputs": {"question": "a\u{0}b"}, "response_mode": "blocking", "user": "u\u{0}x"})).await;
    assert_eq!(nul.status, 200, "{}", nul.text());
    let after = clients[0].run(key("empty"), &json!({"inputs": {"question": "next"}, "response_mode": "blocking", "user": "u3"})).await;
    let id = after.json()["workflow_run_id"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {}", key("empty"));
    let got = clients[2].send("GET", &format!("/v1/workflows/run/{id}"), &[("authorization", &auth)], "").await;
    assert_eq!(got.json()["status"], "succeeded", "{}", got.text());
    mock.shutdown().await;
}

/// SIGKILL under load: every run whose answer (blocking) or terminal event
/// (streaming) a client received is in the store after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_on_postgresql_loses_no_run_a_client_had_its_answer_for() {
    let pg = Postgres::start();
    a_killed_server_loses_no_run_a_client_had_its_answer_for(&pg.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_on_sqlite_loses_no_run_a_client_had_its_answer_for() {
    let dir = tempfile::tempdir().unwrap();
    a_killed_server_loses_no_run_a_client_had_its_answer_for(&sqlite(&dir)).await;
}

async fn a_killed_server_loses_no_run_a_client_had_its_answer_for(store: &str) {
    let script = Script { reply: Reply::Tokens(5), inter_token_delay: Duration::from_millis(1), ..Script::default() };
    let mock = MockLlm::start(script, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut replica = Replica::start(store, &mock).await;
    let url = replica.url.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    // Answers so far, all workers': the kill waits for load to flow, not
    // for a time a loaded machine may not reach it in.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (url, stop, answered) = (url.clone(), stop.clone(), answered.clone());
        workers.spawn(async move {
            let client = TestClient::new(&url);
            let mut acknowledged: Vec<(String, &'static str)> = Vec::new();
            let mut n = 0u64;
            while !stop.is_cancelled() {
                n += 1;
                let streaming = worker % 2 == 1;
                let body = json!({"inputs": {"question": format!("q{n}")}, "response_mode": if streaming { "streaming" } else { "blocking" }, "user": format!("w{worker}")});
                if streaming {
                    let Ok(reply) = client.try_send("POST", "/v1/workflows/run", &[("authorization", &format!("Bearer {}", key("llm"))), ("content-type", "application/json")], body.to_string()).await else { break };
                    // Only a stream whose workflow_finished arrived counts.
                    if let Some(end) = reply.events().iter().map(|e| serde_json::from_str::<Value>(&e.data).unwrap()).find(|e| e["event"] == "workflow_finished") {
                        acknowledged.push((end["workflow_run_id"].as_str().unwrap().to_owned(), "llm"));
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                } else {
                    let Ok(reply) = client.try_send("POST", "/v1/workflows/run", &[("authorization", &format!("Bearer {}", key("empty"))), ("content-type", "application/json")], body.to_string()).await else { break };
                    if reply.status == 200 {
                        acknowledged.push((reply.json()["workflow_run_id"].as_str().unwrap().to_owned(), "empty"));
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            acknowledged
        });
    }
    // Well into the load (a hundred answers), then mid-flight:
    crate::support::eventually("load flows", Duration::from_secs(60), || answered.load(std::sync::atomic::Ordering::Relaxed) > 100).await;
    // SIGKILL: no shutdown, no flush.
    replica.child.kill().unwrap();
    replica.child.wait().unwrap();
    stop.cancel();
    let mut acknowledged = Vec::new();
    while let Some(done) = workers.join_next().await {
        acknowledged.extend(done.unwrap());
    }
    assert!(acknowledged.len() > 20, "load was flowing: {} answers", acknowledged.len());
    let restarted = Replica::start(store, &mock).await;
    let client = TestClient::new(&restarted.url);
    let mut missing = Vec::new();
    for (id, app) in &acknowledged {
        let got = client.send("GET", &format!("/v1/workflows/run/{id}"), &[("authorization", &format!("Bearer {}", key(app)))], "").await;
        if got.status != 200 || got.json()["status"] != "succeeded" {
            missing.push((id.clone(), got.status, got.text().to_owned()));
        }
    }
    println!(
        "{}: {} acknowledged runs before SIGKILL, all read back after the restart",
        store.split(':').next().unwrap(),
        acknowledged.len()
    );
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged runs lost: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(3)]
    );
    mock.shutdown().await;
}

/// PostgreSQL restarts under a replica: the replica connects again, and a
/// run after the restart is stored and read as one before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_connects_again_after_postgresql_restarts() {
    let pg = Postgres::start();
    let mock = MockLlm::start(Script::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let replica = Replica::start(&pg.url, &mock).await;
    let client = TestClient::new(&replica.url);
    let body = json!({"inputs": {"question": "hi"}, "response_mode": "blocking", "user": "u"});
    assert_eq!(client.run(key("empty"), &body).await.status, 200);
    pg.restart();
    // The first run after the restart waits for the writer to connect again.
    let after = client.run(key("empty"), &body).await;
    assert_eq!(after.status, 200, "{}", after.text());
    let id = after.json()["workflow_run_id"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {}", key("empty"));
    // The reader finds its connection gone, connects again and answers.
    let got = client.send("GET", &format!("/v1/workflows/run/{id}"), &[("authorization", &auth)], "").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["status"], "succeeded");
    mock.shutdown().await;
}

/// A store that cannot be opened stops the server at start, naming it.
#[test]
fn a_store_that_cannot_be_opened_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder").join("runs.db");
    for (store, says) in [
        (format!("sqlite:{}", missing.display()), missing.display().to_string()),
        ("sqlite:".to_owned(), "name the file".to_owned()),
        ("sqlite:runs.db?sync=off".to_owned(), "\"sync=off\" is not an option; give synchronous=full or synchronous=normal".to_owned()),
        ("redis://localhost".to_owned(), "give memory, sqlite:PATH or a postgres:// URL".to_owned()),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowbench-server"));
        command.args(["--listen", "127.0.0.1:0", "--store", &store]);
        let app = &APPS[0];
        command.arg("--app").arg(format!("{}={}", app.api_key, mock::workspace_root().join(app.workflow).display()));
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{store}: started");
        assert!(stderr.contains(&says), "{store}: {stderr}");
    }
}
