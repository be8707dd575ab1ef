//! `hookseal check` / `hookseal sign` as a user runs them, and config errors.

use std::process::Command;

use crate::support::*;

fn hookseal() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hookseal"));
    c.env_remove("HOOKSEAL_CONFIG").env("HOOKSEAL_LOG", "warn");
    c
}

#[test]
fn check_accepts_the_example_config() {
    let out = hookseal()
        .args(["check", "--config"])
        .arg(repo_root().join("config.example.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for route in ["supaglue", "github", "hotglue", "synchub", "app"] {
        assert!(stdout.contains(&format!("route {route}")), "{stdout}");
    }
    assert!(
        !stdout.contains("whsec_"),
        "check never prints a secret: {stdout}"
    );
    assert!(!stdout.contains("synchub-demo-secret"), "{stdout}");
}

#[test]
fn check_reports_every_mistake_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = "\
[listen]
address = \"127.0.0.1:8443\"
colour = \"blue\"

[limits]
body_timeout = \"15 parsecs\"

[upstream]
url = \"http://127.0.0.1:8080\"

[[route]]
name = \"a\"
path = \"/hooks\"
scheme = \"github\"
secrets = [{ env = \"HOOKSEAL_TEST_SURELY_UNSET_VARIABLE\" }]

[[route]]
name = \"b\"
path = \"/hooks\"
scheme = \"none\"
";
    std::fs::write(&path, text).unwrap();
    let out = hookseal()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for (line, key) in [
        (3, "listen.colour"),
        (6, "limits.body_timeout"),
        (15, "route[0].secrets[0]"),
        (19, "route[1].path"),
    ] {
        let want = format!("{file}:{line}: {key}");
        assert!(stderr.contains(&want), "missing {want:?} in\n{stderr}");
    }
    assert!(stderr.contains("4 error(s)"), "{stderr}");
}

#[test]
fn check_resolves_env_and_file_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-a-file\n").unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        format!(
            "[upstream]\nurl = \"http://127.0.0.1:8080\"\n[[route]]\nname = \"gh\"\npath = \"/gh\"\nscheme = \"github\"\n\
             secrets = [{{ id = \"e\", env = \"HOOKSEAL_TEST_SECRET\" }}, {{ id = \"f\", file = \"{}\" }}]\n",
            secret.display()
        ),
    )
    .unwrap();
    let out = hookseal()
        .env("HOOKSEAL_TEST_SECRET", "from-the-env")
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("keys=[e,f]"), "{stdout}");
    assert!(!stdout.contains("from-"), "{stdout}");
}

/// `hookseal sign --url` makes a request the proxy accepts; `hookseal sign` alone prints headers.
#[tokio::test]
async fn sign_produces_requests_the_proxy_accepts() {
    let up = Upstream::start().await;
    let routes = format!(
        "{}[[route]]\nname = \"gh\"\npath = \"/gh\"\nscheme = \"github\"\nsecrets = [{{ value = \"gh-secret\" }}]\n\
         [[route]]\nname = \"hg\"\npath = \"/hg\"\nscheme = \"hotglue\"\nsecrets = [{{ value = \"hg-secret\" }}]\n\
         [[route]]\nname = \"sh\"\npath = \"/sh\"\nscheme = \"hmac\"\nsecrets = [{{ value = \"sh-secret\" }}]\n\
         [route.hmac]\nheader = \"X-Sig\"\ntimestamp_header = \"X-Ts\"\nsigned_payload = \"{{timestamp}}.{{body}}\"\n",
        sw_route("")
    );
    let sc = Sidecar::start(up.addr, "", &routes).await;
    let config = sc.dir.path().join("hookseal.toml");
    let body = sc.dir.path().join("body.json");
    std::fs::write(&body, br#"{"hello":"world"}"#).unwrap();

    for (scheme, secret, path, name, route) in [
        ("standard-webhooks", WHSEC, "/hooks/sw", "sw", None),
        ("github", "gh-secret", "/gh", "gh", None),
        ("hotglue", "hg-secret", "/hg", "hg", None),
        ("hmac", "sh-secret", "/sh", "sh", Some("sh")),
    ] {
        let mut cmd = hookseal();
        cmd.args([
            "sign",
            "--scheme",
            scheme,
            "--secret",
            secret,
            "--body-file",
        ])
        .arg(&body);
        cmd.arg("--url")
            .arg(sc.url(path))
            .arg("--config")
            .arg(&config);
        if let Some(r) = route {
            cmd.args(["--route", r]);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{scheme}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("200 OK"), "{scheme}: {stdout}");
        assert_eq!(up.last().headers["x-hookseal-route"], name);
        assert_eq!(up.last().body.as_ref(), br#"{"hello":"world"}"#);
    }
    // A wrong secret: sign prints the rejection and fails.
    let mut cmd = hookseal();
    cmd.args(["sign", "--scheme", "github", "--secret", "wrong", "--url"])
        .arg(sc.url("/gh"));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("401") && stdout.contains("bad_signature"),
        "{stdout}"
    );

    // Without --url: the headers, one `Name: value` a line, deterministic for fixed inputs.
    let out = hookseal()
        .args([
            "sign",
            "--scheme",
            "standard-webhooks",
            "--secret",
            WHSEC,
            "--id",
            "msg_1",
            "--timestamp",
            "1700000000",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expect = sign_standard(WHSEC, "msg_1", 1_700_000_000, b"");
    for (k, v) in expect {
        assert!(
            stdout
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("{k}: {v}"))),
            "{k}: {v} not in {stdout}"
        );
    }
}

/// A secret `file` is read with a bound: a FIFO (which would block `check`, startup and every
/// reload forever) and a huge file are config errors, not a hang or a giant "secret".
#[test]
fn secret_file_that_is_a_fifo_or_huge_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let huge = dir.path().join("huge");
    // Sparse: 1 GiB of zeros that costs no disk; reading it all would cost 1 GiB of memory.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    for (file, expect) in [(&fifo, "not a regular file"), (&huge, "larger than")] {
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            format!(
                "[upstream]\nurl = \"http://127.0.0.1:8080\"\n[[route]]\nname = \"gh\"\npath = \"/gh\"\n\
                 scheme = \"github\"\nsecrets = [{{ file = \"{}\" }}]\n",
                file.display()
            ),
        )
        .unwrap();
        let mut child = hookseal()
            .args(["check", "--config"])
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!(
                    "hookseal check still running after 60 s on {}",
                    file.display()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("route[0].secrets[0].file"), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
    }
}

/// `hookseal check` prints the upstream URL: one with `user:password@` is refused (hookseal
/// never sends it anyway) rather than printed, and the error does not echo it.
#[test]
fn upstream_url_with_userinfo_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[upstream]\nurl = \"http://app:pa55word@127.0.0.1:8080\"\n[[route]]\nname = \"app\"\n\
         path_prefix = \"/\"\nscheme = \"none\"\nupstream = \"http://u:pa55word@127.0.0.1:8081\"\n",
    )
    .unwrap();
    let out = hookseal()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("pa55word"), "{all}");
    assert!(all.contains(":2: upstream.url"), "{all}");
    assert!(all.contains("route[0].upstream"), "{all}");
}

/// Issue 17 finding 8: `tolerance = "500ms"` passed `check` (printed as `0s`) and, with ids kept
/// for twice the tolerance, dedupe lasted less than the second timestamps are counted in.
/// Issue 17 findings 6 and 9: the new `replay_capacity` and `[forwarding] keep` keys are
/// checked the same way.
#[test]
fn check_refuses_sub_second_tolerance_and_bad_replay_and_forwarding_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = format!(
        "[upstream]
url = \"http://127.0.0.1:8080\"
[replay]
capacity = 100
[forwarding]
keep = [\"X-Real-IP\", \"Authorization\"]
{}tolerance = \"500ms\"
[[route]]
name = \"b\"
path = \"/b\"
scheme = \"standard-webhooks\"
secrets = [{{ value = \"{WHSEC}\" }}]
replay_capacity = 30
[[route]]
name = \"c\"
path = \"/c\"
scheme = \"stripe\"
secrets = [{{ value = \"whsec_x\" }}]
replay_capacity = 5
",
        sw_route("")
    );
    std::fs::write(&path, &text).unwrap();
    let out = hookseal()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let file = path.display().to_string();
    for (line, key, message) in [
        (line("keep"), "forwarding.keep", "forwarding policy"),
        (line("tolerance"), "route[0].tolerance", "at least 1s"),
        (
            line("replay_capacity = 5"),
            "route[2].replay_capacity",
            "only for a route that dedupes",
        ),
    ] {
        let want = format!("{file}:{line}: {key}");
        assert!(stderr.contains(&want), "missing {want:?} in\n{stderr}");
        assert!(stderr.contains(message), "missing {message:?} in\n{stderr}");
    }

    // Shares that add up to more than the store holds.
    let over = text
        .replace(
            "keep = [\"X-Real-IP\", \"Authorization\"]",
            "keep = [\"X-Real-IP\"]",
        )
        .replace("tolerance = \"500ms\"", "replay_capacity = 80")
        .replace("replay_capacity = 5\n", "");
    std::fs::write(&path, &over).unwrap();
    let out = hookseal()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = over
        .lines()
        .position(|l| l.starts_with("replay_capacity = 80"))
        .unwrap()
        + 1;
    let want = format!("{file}:{line}: route[0].replay_capacity: the routes' replay_capacity add up to 110, more than replay.capacity (100)");
    assert!(stderr.contains(&want), "missing {want:?} in\n{stderr}");
    assert!(stderr.contains("1 error(s)"), "{stderr}");

    // One second is the smallest window.
    let ok = format!(
        "[upstream]\nurl = \"http://127.0.0.1:8080\"\n{}",
        sw_route("tolerance = \"1s\"")
    );
    std::fs::write(&path, ok).unwrap();
    let out = hookseal()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tolerance=1s"));
}

/// Issue 17 finding 9: `hookseal check … | head` panicked on the broken pipe. With stdout
/// closed before it writes, `check` now exits 0 without a word on stderr.
#[test]
fn check_with_a_closed_stdout_exits_quietly() {
    use std::os::unix::net::UnixStream;
    let (ours, theirs) = UnixStream::pair().unwrap();
    drop(ours);
    let out = hookseal()
        .args(["check", "--config"])
        .arg(repo_root().join("config.example.toml"))
        .stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            theirs,
        )))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--log-level` is in `--help`, HOOKSEAL_LOG still works, and the flag wins over it.
#[test]
fn log_level_flag_is_documented_and_wins_over_hookseal_log() {
    let (_, help, _) = run(hookseal().arg("--help"));
    assert!(help.contains("--log-level <LEVEL>"), "{help}");
    assert!(help.contains("HOOKSEAL_LOG"), "{help}");

    // `run` on an address already taken logs one error line and exits 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookseal.toml");
    std::fs::write(
        &path,
        format!(
            "[listen]\naddress = \"{}\"\n[admin]\naddress = \"127.0.0.2:0\"\n\
             [upstream]\nurl = \"http://127.0.0.1:9\"\n\
             [[route]]\nname = \"app\"\npath_prefix = \"/\"\nscheme = \"none\"\n",
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let bind_error = |env: Option<&str>, flag: Option<&str>| {
        let mut c = hookseal();
        c.env_remove("HOOKSEAL_LOG");
        if let Some(e) = env {
            c.env("HOOKSEAL_LOG", e);
        }
        if let Some(f) = flag {
            c.args(["--log-level", f]);
        }
        let (code, _, stderr) = run(c.args(["run", "--config"]).arg(&path));
        assert_eq!(code, Some(1), "{stderr}");
        stderr.contains("cannot bind the listen address")
    };
    assert!(bind_error(None, None), "default level info");
    assert!(!bind_error(Some("off"), None), "HOOKSEAL_LOG still works");
    assert!(bind_error(Some("off"), Some("error")), "the flag wins");
    assert!(!bind_error(Some("error"), Some("off")), "the flag wins");
}

/// `sign` with a missing or unknown scheme lists the schemes.
#[test]
fn sign_lists_the_schemes_when_the_name_is_missing_or_wrong() {
    for args in [
        &["sign", "--secret", "x"][..],
        &["sign", "--scheme", "gihtub", "--secret", "x"],
    ] {
        let (code, _, stderr) = run(hookseal().args(args));
        assert_ne!(code, Some(0), "{stderr}");
        for name in ["standard-webhooks", "github", "stripe", "discord", "hmac"] {
            assert!(stderr.contains(name), "{args:?}: {name} in\n{stderr}");
        }
    }
    let (_, help, _) = run(hookseal().args(["sign", "--help"]));
    assert!(
        help.contains("possible values: standard-webhooks"),
        "{help}"
    );
}

/// `scheme = "none"` is no verification, so there is nothing to sign with: `sign` refuses it
/// and says why (it is still a listed `--scheme` value, as it is a config value).
#[test]
fn sign_refuses_scheme_none() {
    let (code, stdout, stderr) =
        run(hookseal().args(["sign", "--scheme", "none", "--secret", "x"]));
    assert_ne!(code, Some(0), "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("scheme none does not sign requests"),
        "{stderr}"
    );
}

/// `check --syntax-only` validates a config in CI without its secrets: env and file secrets,
/// `replay.url` from env, and TLS files are not read; mistakes in the file are still found.
#[test]
fn check_syntax_only_reads_no_secret_and_still_finds_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookseal.toml");
    let config = "\
[listen]
address = \"127.0.0.1:8443\"
tls = { cert = \"/nonexistent/tls.crt\", key = \"/nonexistent/tls.key\" }

[upstream]
url = \"http://127.0.0.1:8080\"

[replay]
store = \"redis\"
url = { env = \"HOOKSEAL_TEST_SURELY_UNSET_REDIS_URL\" }

[[route]]
name = \"sw\"
path = \"/hooks/sw\"
scheme = \"standard-webhooks\"
secrets = [{ env = \"HOOKSEAL_TEST_SURELY_UNSET_VARIABLE\" }]

[[route]]
name = \"discord\"
path = \"/hooks/discord\"
scheme = \"discord\"
secrets = [{ file = \"/nonexistent/discord-public-key\" }]
";
    std::fs::write(&path, config).unwrap();
    let (code, _, stderr) = run(hookseal().args(["check", "--config"]).arg(&path));
    assert_eq!(code, Some(1), "a full check needs the secrets:\n{stderr}");
    let (code, stdout, stderr) = run(hookseal()
        .args(["check", "--syntax-only", "--config"])
        .arg(&path));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok (syntax only"), "{stdout}");

    let broken = config.replace(
        "path = \"/hooks/discord\"",
        "path = \"/hooks/sw\"\ndedup = true",
    );
    std::fs::write(&path, broken).unwrap();
    let (code, _, stderr) = run(hookseal()
        .args(["check", "--syntax-only", "--config"])
        .arg(&path));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("matches the same requests"), "{stderr}");
    assert!(
        stderr.contains("route[1].dedup: unknown key (did you mean `dedupe`?)"),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}

/// Bad durations and sizes quote the value; an unknown key close to a known one gets a
/// suggestion, one that is nothing like any key does not.
#[test]
fn value_errors_quote_the_value_and_typos_get_the_nearest_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[limits]\nbody_timeout = \"15 parsecs\"\nmax_body_bytes = \"12 bananas\"\n\
         colour = \"blue\"\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
         [[route]]\nname = \"a\"\npath = \"/a\"\nscheme = \"none\"\ntolerence = \"5m\"\n\
         [[route]]\nname = \"b\"\npath = \"/b\"\nscheme = \"github\"\ntolerance = \"0s\"\n\
         secrets = [{ value = \"x\" }]\n",
    )
    .unwrap();
    let (code, _, stderr) = run(hookseal().args(["check", "--config"]).arg(&path));
    assert_eq!(code, Some(1));
    for want in [
        "limits.body_timeout: \"15 parsecs\" is not a duration",
        "limits.max_body_bytes: \"12 bananas\" is not a size",
        "route[1].tolerance: \"0s\" is not a duration of at least 1s",
        "route[0].tolerence: unknown key (did you mean `tolerance`?)",
        "limits.colour: unknown key; expected one of",
    ] {
        assert!(stderr.contains(want), "{want:?} in\n{stderr}");
    }
}

/// `check` prints config words as they are written, not Rust debug names.
#[test]
fn check_prints_config_words() {
    let (code, stdout, stderr) = run(hookseal()
        .args(["check", "--config"])
        .arg(repo_root().join("config.example.toml")));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("replay memory"), "{stdout}");
    assert!(
        stdout.contains("tolerance=5m dedupe=true mode=enforce"),
        "{stdout}"
    );
    for debug in ["Memory", "Enforce", "Observe", "Redis"] {
        assert!(!stdout.contains(debug), "{debug} in\n{stdout}");
    }
}

/// Issue 17: `check` warns (exit 0, on stderr) when a `none` prefix route covers verifying
/// routes' exact paths, and when `public_url` has a path on a prefix route; the example config
/// is written the safe way and gets no warning.
#[test]
fn check_warns_about_a_catch_all_beside_exact_verifying_paths() {
    let run = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookseal.toml");
        std::fs::write(&path, text).unwrap();
        let out = hookseal()
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("route app"), "{stdout}");
        stderr
    };
    let base = "[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
                [[route]]\nname = \"github\"\npath = \"/webhooks/github\"\nscheme = \"github\"\n\
                secrets = [{ value = \"s\" }]\n\
                [[route]]\nname = \"gh2\"\npath_prefix = \"/webhooks/gh2/\"\nscheme = \"github\"\n\
                secrets = [{ value = \"s\" }]\n";
    let catch_all =
        format!("{base}[[route]]\nname = \"app\"\npath_prefix = \"/\"\nscheme = \"none\"\n");
    let stderr = run(&catch_all);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    let w = warnings[0];
    assert!(w.contains("route app") && w.contains("(github)"), "{w}");
    assert!(
        w.contains("ambiguous_path") && w.contains("path_prefix = \"/app/\""),
        "{w}"
    );
    // A catch-all under /webhooks/ covers the exact path too.
    let under = format!(
        "{base}[[route]]\nname = \"app\"\npath_prefix = \"/webhooks/\"\nscheme = \"none\"\n"
    );
    assert!(run(&under).contains("warning: route app"));
    // Narrowed to the app's own paths, or beside prefix verifying routes only: no warning.
    let narrow =
        format!("{base}[[route]]\nname = \"app\"\npath_prefix = \"/app/\"\nscheme = \"none\"\n");
    assert!(!run(&narrow).contains("warning"), "narrow");
    let prefixed = "[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
                    [[route]]\nname = \"github\"\npath_prefix = \"/webhooks/github/\"\n\
                    scheme = \"github\"\nsecrets = [{ value = \"s\" }]\n\
                    [[route]]\nname = \"app\"\npath_prefix = \"/\"\nscheme = \"none\"\n";
    assert!(!run(prefixed).contains("warning"), "prefixed");
    // public_url with a path on a prefix route.
    let pinned = format!(
        "{base}[[route]]\nname = \"tw\"\npath_prefix = \"/twilio/\"\nscheme = \"twilio\"\n\
         secrets = [{{ value = \"t\" }}]\npublic_url = \"https://h.example.com/twilio/sms\"\n\
         [[route]]\nname = \"app\"\npath_prefix = \"/app/\"\nscheme = \"none\"\n"
    );
    let stderr = run(&pinned);
    assert!(
        stderr.contains("warning: route tw: public_url has a path on a path_prefix route"),
        "{stderr}"
    );
    let open = pinned.replace("https://h.example.com/twilio/sms", "https://h.example.com");
    assert!(!run(&open).contains("warning"), "public_url without a path");

    // The example config is written the safe way.
    let out = hookseal()
        .args(["check", "--config"])
        .arg(repo_root().join("config.example.toml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
}
