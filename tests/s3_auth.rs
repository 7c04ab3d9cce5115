//! S3 credentials against a server that checks them (`s3s-fs` verifies SigV4 signatures, as
//! AWS does): wrong keys are refused with an authentication error before anything is written,
//! the secret appears in no error, and the right keys scan the library. Its own test binary:
//! it changes the process's AWS variables.

use musicfs_origin::OriginError;
use musicfs_scan::{ScanConfig, ScanError};
use musicfs_tests::keyable_library;
use musicfs_tools::servers::SigningS3Server;

const ACCESS_KEY: &str = "musicfs-auth-test";
const SECRET: &str = "s3s-secret-7f3a9c1e5b";
const WRONG_SECRET: &str = "not-the-secret-2d8e4f6a";

fn set_keys(id: &str, secret: &str) {
    // SAFETY: this test binary has one test; no other thread reads the environment meanwhile.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", id);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", secret);
        std::env::set_var("AWS_REGION", "us-east-1");
    }
}

/// Everything logged by this process, from DEBUG up: what a user's terminal or journal holds.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn capture() -> Log {
        let log = Log::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        log
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn scan(db: &std::path::Path, url: &str) -> Result<musicfs_scan::Summary, ScanError> {
    let mut cfg = ScanConfig::new(db, Vec::new());
    cfg.remotes = vec![musicfs_origin::OriginUrl::parse(url).unwrap()];
    musicfs_scan::scan(&cfg)
}

#[test]
fn wrong_s3_credentials_are_refused_and_the_right_ones_scan() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let files = keyable_library(
        &data.join("music"),
        20,
        11,
        &[musicfs_tools::Format::Flac, musicfs_tools::Format::Mp3],
    );
    let server = match SigningS3Server::start(&data, ACCESS_KEY, SECRET) {
        Ok(server) => server,
        Err(reason) => {
            return musicfs_tools::missing_prerequisite(&format!("signing S3 server: {reason}"));
        }
    };
    let url = server.url("music");
    let db = dir.path().join("lib.db");
    let log = Log::capture();

    for (id, secret, what) in [
        (ACCESS_KEY, WRONG_SECRET, "a wrong secret"),
        ("someone-else", SECRET, "an unknown access key"),
    ] {
        set_keys(id, secret);
        let err = scan(&db, &url).expect_err(what);
        assert!(
            matches!(err, ScanError::Origin(OriginError::Auth { .. })),
            "{what}: not an authentication error: {err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains("from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
            "{what}: the error does not say which keys were used: {shown}"
        );
        assert!(
            !shown.contains(SECRET) && !shown.contains(WRONG_SECRET),
            "{what}: a secret in the error: {shown}"
        );
        // S3's refusal names its code; its body (which echoes the access key id and the
        // request signed) is shown nowhere, neither in the error nor in the log.
        let logged = log.text();
        for text in [&shown, &logged] {
            for leak in [id, "CanonicalRequest", "StringToSign", "AWS4-HMAC-SHA256\n"] {
                assert!(!text.contains(leak), "{what}: {leak:?} shown: {text}");
            }
        }
        assert_eq!(
            musicfs_tests::try_file_count(&db).unwrap_or(0),
            0,
            "{what}: nothing is written"
        );
    }

    set_keys(ACCESS_KEY, SECRET);
    let summary = scan(&db, &url).unwrap();
    assert_eq!(summary.added as usize, files.len());
    assert_eq!(summary.errors, 0);
}
