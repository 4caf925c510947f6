//! Network namespaces a test creates for itself (root only), so that traffic a test sends —
//! multicast, nftables-dropped datagrams — never touches the machine's real interfaces.

#![allow(dead_code)]

use std::process::Command;

/// Runs a command to completion; its stdout, or why it failed.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub fn is_root() -> bool {
    run("id", &["-u"]).is_ok_and(|uid| uid.trim() == "0")
}

/// A namespace with only its loopback, up; deleted however the test ends. Processes inside
/// it must die first (declare them after it, so they drop before it): the kernel keeps a
/// namespace alive while a process is still inside.
pub struct Namespace(String);

impl Namespace {
    /// `<prefix>-<pid>`, or why this machine cannot make one (the test then skips).
    pub fn create(prefix: &str) -> Result<Namespace, String> {
        if !is_root() {
            return Err("needs root to create a network namespace".into());
        }
        run("ip", &["-V"]).map_err(|e| format!("`ip` (iproute2) unavailable ({e})"))?;
        let name = format!("{prefix}-{}", std::process::id());
        run("ip", &["netns", "add", &name]).map_err(|e| format!("`ip netns` unavailable ({e})"))?;
        let namespace = Namespace(name);
        namespace.ip(&["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n <namespace> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-n", &self.0];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `program` inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", &self.0, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "delete", &self.0]);
    }
}
