//! A target made of several processes has its CPU summed over all of them:
//! two `flowbench-server --reuse-port` processes sharing one port, driven
//! by `flowbench run --target`, measured by the test from /proc meanwhile.

use flowbench::load::health::process_cpu_ns;
use std::path::PathBuf;
use std::process::Command;

/// The server binary beside `flowbench` (cargo builds it for the
/// workspace's tests); built here when only this package is tested.
pub(crate) fn server_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_flowbench")).with_file_name("flowbench-server");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "server", "--bin", "flowbench-server"])
            .current_dir(mock::workspace_root())
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

#[test]
fn a_target_of_two_processes_has_the_cpu_of_both() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let workflow = mock::workspace_root().join("fixtures/workflows/start_end.yml");
    let listen = format!("127.0.0.1:{port}");
    let app = format!("app-empty={}", workflow.display());
    let mut servers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(server_binary())
                .args(["--listen", &listen, "--reuse-port", "--worker-threads", "1", "--app", &app])
                .env("RUST_LOG", "error")
                .spawn()
                .unwrap()
        })
        .collect();
    let pids: Vec<u32> = servers.iter().map(std::process::Child::id).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while flowbench::load::health::local_pids_listening_on(listen.parse().unwrap()).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "both servers listen");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let json = std::env::temp_dir().join(format!("flowbench-target-cpu-{}.json", std::process::id()));
    let before: Vec<u64> = pids.iter().map(|&p| process_cpu_ns(p).unwrap()).collect();
    let output = Command::new(env!("CARGO_BIN_EXE_flowbench"))
        .args(["run", "--target", &format!("http://{listen}"), "--api-key", "empty=app-empty", "--scenario", "empty"])
        .args(["--users", "16", "--spawn-rate", "1000", "--duration", "2s", "--warmup", "0s", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let after: Vec<u64> = pids.iter().map(|&p| process_cpu_ns(p).unwrap()).collect();
    for server in &mut servers {
        let _ = server.kill();
        let _ = server.wait();
    }
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.code().is_some_and(|c| c == 0 || c == 3), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let health = &report["scenarios"][0]["health"];
    let reported_s = health["target_cpu_cores"].as_f64().expect("target CPU measured") * health["span_s"].as_f64().unwrap();
    let used: Vec<f64> = before.iter().zip(&after).map(|(b, a)| (a - b) as f64 / 1e9).collect();
    let (sum, most) = (used.iter().sum::<f64>(), used.iter().cloned().fold(0.0, f64::max));
    // The test's window holds the report's: the figure is at most both
    // processes' CPU, and more than either one's alone.
    assert!(used.iter().all(|&u| u > 0.0), "the kernel spread the connections over both: {used:?}");
    assert!(reported_s <= sum * 1.02 + 0.005, "reported {reported_s:.3} s > both processes' {sum:.3} s");
    assert!(reported_s > most * 1.02, "reported {reported_s:.3} s is one process's ({used:?}), not both");
    let of = health["target_cpu_of"].as_str().unwrap();
    for pid in &pids {
        assert!(of.contains(&pid.to_string()), "{of} names {pid}");
    }
    assert!(text.contains("Target CPU: "), "{text}");
}
