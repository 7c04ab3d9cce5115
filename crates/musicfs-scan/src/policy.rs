use musicfs_db::NamePolicy;

/// The layout's naming rules, as the DB writer needs them.
pub(crate) struct LayoutPolicy {
    pub case_insensitive: bool,
}

impl NamePolicy for LayoutPolicy {
    fn disambiguate(&self, name: &str, ext: &str, n: u32) -> String {
        musicfs_layout::disambiguate(name, ext, n)
    }

    fn fold(&self, name: &str) -> Option<String> {
        self.case_insensitive
            .then(|| musicfs_layout::fold_case(name))
    }
}
