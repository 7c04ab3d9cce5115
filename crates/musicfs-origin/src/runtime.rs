use std::sync::OnceLock;

/// The one small runtime the async clients (S3) run on, beside fuser's own threads. Callers
/// are blocking threads (scanner workers, the mount's I/O pool) that `block_on` it; no FUSE
/// worker ever does.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("musicfs-net")
            .enable_all()
            .build()
            .expect("cannot start the network runtime")
    })
}
