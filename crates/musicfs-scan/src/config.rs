use std::path::PathBuf;
use std::time::Duration;

/// One folder of a local root to walk in a scoped scan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The origin root (canonical, as the scan resolves it).
    pub root: PathBuf,
    /// The folder, relative to the root (empty: the root itself).
    pub rel: Vec<u8>,
    /// Its subfolders too.
    pub recursive: bool,
}

/// Everything one scan needs. The binary fills it from flags, environment and config file.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub db: PathBuf,
    /// Local origin roots to scan. Origins already in the DB but not named here are left alone.
    pub roots: Vec<PathBuf>,
    /// Walk only these folders of the local roots (change notifications); empty: everything.
    pub only: Vec<Scope>,
    /// Remote origins to scan (`sftp://…`, `s3://…`).
    pub remotes: Vec<musicfs_origin::OriginUrl>,
    /// Files of remote origins read at once: their reads wait on round trips, not on a core.
    pub remote_parallel: usize,
    /// (view name, template). Empty: keep the layout stored in the DB (or the default).
    pub templates: Vec<(String, String)>,
    /// Names in one directory collide case-insensitively. `None`: keep the stored setting.
    pub case_insensitive: Option<bool>,
    /// Scan an origin root even when it is empty although the DB has files for it.
    pub allow_empty: bool,
    /// A write transaction commits after this many operations...
    pub batch_ops: usize,
    /// ...or after this long, so a running mount sees progress.
    pub batch_time: Duration,
    /// Worker threads for walking and tag reading (0: one per core).
    pub threads: usize,
    /// Hard limit on reading one file's tags (see `musicfs_tags::read_track_within`).
    pub tag_timeout: Duration,
    /// Keep the search index (`<db>.search/`) in step with the DB.
    pub search: bool,
    /// Index symlinks whose target lies outside every music folder. Off by default: such a
    /// link would serve whatever it points at (with `--allow-other`, to every user).
    pub follow_external_symlinks: bool,
    /// The album artist shown for a compilation: an album group of several artists, none of
    /// them on half its tracks, and no album artist tag (`$album_artist`).
    pub various_artists: String,
    /// Draw a progress bar on stderr (only effective on a terminal).
    pub progress: bool,
}

impl ScanConfig {
    pub fn new(db: impl Into<PathBuf>, roots: Vec<PathBuf>) -> ScanConfig {
        ScanConfig {
            db: db.into(),
            roots,
            only: Vec::new(),
            remotes: Vec::new(),
            remote_parallel: 64,
            templates: Vec::new(),
            case_insensitive: None,
            allow_empty: false,
            batch_ops: 5_000,
            batch_time: Duration::from_secs(1),
            threads: 0,
            tag_timeout: Duration::from_secs(30),
            search: true,
            follow_external_symlinks: false,
            various_artists: musicfs_tags::album::VARIOUS_ARTISTS.to_owned(),
            progress: false,
        }
    }
}
