use musicfs_layout::{DEFAULT_TEMPLATE, FileName, Layout, MAX_NAME_BYTES, Template};
use musicfs_tags::Track;
use proptest::prelude::*;

fn track() -> Track {
    Track {
        title: Some("Paranoid Android".into()),
        artist: Some("Radiohead".into()),
        album: Some("OK Computer".into()),
        date: Some("1997-05-21".into()),
        track: Some(2),
        tracktotal: Some(12),
        genre: Some("Rock".into()),
        ..Track::default()
    }
}

const FILE: FileName = FileName {
    stem: "02 paranoid",
    ext: "flac",
};

fn render(template: &str, t: &Track) -> String {
    let layout = Layout::new(&[(String::new(), template.to_owned())], false).unwrap();
    layout.render(t, &FILE)[0].components.join("/")
}

#[test]
fn default_template_full_tags() {
    assert_eq!(
        render(DEFAULT_TEMPLATE, &track()),
        "Radiohead/OK Computer (1997)/02 - Paranoid Android.flac"
    );
}

#[test]
fn default_template_prefers_albumartist() {
    let t = Track {
        albumartist: Some("Various Artists".into()),
        ..track()
    };
    assert!(render(DEFAULT_TEMPLATE, &t).starts_with("Various Artists/"));
}

#[test]
fn default_template_missing_everything() {
    assert_eq!(
        render(DEFAULT_TEMPLATE, &Track::default()),
        "Unknown Artist/Unknown Album/02 paranoid.flac"
    );
}

#[test]
fn default_template_multidisc() {
    let t = Track {
        disc: Some(2),
        disctotal: Some(2),
        ..track()
    };
    assert_eq!(
        render(DEFAULT_TEMPLATE, &t),
        "Radiohead/OK Computer (1997)/2-02 - Paranoid Android.flac"
    );
}

#[test]
fn track_number_padding_follows_total() {
    let t = Track {
        track: Some(7),
        tracktotal: Some(150),
        ..track()
    };
    assert_eq!(render("$track", &t), "007.flac");
    let t = Track {
        tracktotal: None,
        ..t
    };
    assert_eq!(render("$track", &t), "07.flac");
}

#[test]
fn braces_fallbacks_and_literals() {
    assert_eq!(render("${album}", &track()), "OK Computer.flac");
    assert_eq!(render("${albumartist|artist}", &track()), "Radiohead.flac");
    let no_genre = Track {
        genre: None,
        ..track()
    };
    assert_eq!(render("${genre|\"No Genre\"}", &no_genre), "No Genre.flac");
    assert_eq!(render("${ genre | \"No Genre\" }", &track()), "Rock.flac");
}

#[test]
fn optional_sections_drop_when_a_field_is_missing() {
    let t = Track {
        date: None,
        ..track()
    };
    assert_eq!(render("$album[ ($year)]", &t), "OK Computer.flac");
    assert_eq!(
        render("$album[ ($year)]", &track()),
        "OK Computer (1997).flac"
    );
    assert_eq!(render("[$genre - ][$year]x", &t), "Rock - x.flac");
}

#[test]
fn functions_compose() {
    assert_eq!(render("%initial{%the{$artist}}", &track()), "R.flac");
    let t = Track {
        artist: Some("The Beatles".into()),
        ..track()
    };
    assert_eq!(render("%the{$artist}", &t), "Beatles, The.flac");
    assert_eq!(render("%lower{$album}", &t), "ok computer.flac");
    assert_eq!(render("%upper{%left{$album,2}}", &t), "OK.flac");
    assert_eq!(render("%pad{$disc,2}x", &t), "00x.flac");
    assert_eq!(
        render("%if{$comp,Compilations,$artist}", &t),
        "The Beatles.flac"
    );
}

#[test]
fn escapes() {
    assert_eq!(render("$$1 $% $[x$] a$,b", &track()), "$1 % [x] a,b.flac");
    assert_eq!(render("100%", &track()), "100%.flac");
}

#[test]
fn slashes_in_tags_never_make_directories() {
    let t = Track {
        artist: Some("AC/DC".into()),
        title: Some("../../etc/passwd".into()),
        ..track()
    };
    let path = render("$artist/$title", &t);
    assert_eq!(path, "AC_DC/.._.._etc_passwd.flac");
}

#[test]
fn extension_is_the_real_one() {
    let layout = Layout::default_layout();
    let file = FileName {
        stem: "x",
        ext: "ogg",
    };
    let t = Track {
        format: Some("vorbis".into()),
        ..track()
    };
    let p = &layout.render(&t, &file)[0];
    assert!(p.components.last().unwrap().ends_with(".ogg"));
}

#[test]
fn several_views_make_top_level_dirs() {
    let layout = Layout::new(
        &[
            ("Artists".into(), "$artist/$title".into()),
            ("Genres".into(), "$genre/$artist - $title".into()),
        ],
        false,
    )
    .unwrap();
    let placements = layout.render(&track(), &FILE);
    assert_eq!(placements.len(), 2);
    assert_eq!(
        placements[0].components,
        ["Artists", "Radiohead", "Paranoid Android.flac"]
    );
    assert_eq!(
        placements[1].components,
        ["Genres", "Rock", "Radiohead - Paranoid Android.flac"]
    );
    assert_ne!(placements[0].key, placements[1].key);
}

#[test]
fn placement_key_is_stable_and_path_sensitive() {
    let layout = Layout::default_layout();
    let a = layout.render(&track(), &FILE);
    assert_eq!(a, layout.render(&track(), &FILE));
    let t = Track {
        title: Some("Karma Police".into()),
        ..track()
    };
    assert_ne!(a[0].key, layout.render(&t, &FILE)[0].key);
}

#[test]
fn view_name_errors() {
    let unnamed = Layout::new(
        &[("A".into(), "$a".into()), (String::new(), "$title".into())],
        false,
    );
    assert!(unnamed.is_err());
    let dup = Layout::new(
        &[("A".into(), "$title".into()), ("A".into(), "$title".into())],
        false,
    );
    assert!(dup.unwrap_err().to_string().contains("two views"));
    let unsafe_name = Layout::new(
        &[
            ("A/B".into(), "$title".into()),
            ("C".into(), "$title".into()),
        ],
        false,
    );
    assert!(unsafe_name.is_err());
}

#[test]
fn errors_carry_the_column() {
    let cases: &[(&str, usize, &str)] = &[
        ("$artst/$title", 2, "unknown field `artst`"),
        ("$artist/${title", 16, "expected `|` or `}`"),
        ("abc]", 4, "without a matching `[`"),
        ("[$artist", 1, "never closed"),
        ("%nope{x}", 1, "unknown function `%nope`"),
        ("%left{x}", 1, "takes 2 argument(s), got 1"),
        ("$ x", 1, "must be followed by a field name"),
        ("${\"open}", 3, "never closed"),
        ("%lower{$title", 1, "never closed"),
    ];
    for (template, column, message) in cases {
        let err = Template::parse(template).unwrap_err();
        assert_eq!(err.column, *column, "{template}: {err}");
        assert!(err.message.contains(message), "{template}: {err}");
        assert!(err.to_string().contains(template));
    }
}

#[test]
fn field_names_are_case_insensitive() {
    assert_eq!(render("$Artist", &track()), "Radiohead.flac");
}

fn check_component(c: &str) {
    assert!(!c.is_empty(), "empty component");
    assert!(c != "." && c != "..", "dot component {c:?}");
    assert!(!c.contains('/') && !c.contains('\0'), "separator in {c:?}");
    assert!(!c.chars().any(char::is_control), "control char in {c:?}");
    assert!(c.len() <= MAX_NAME_BYTES, "{} bytes", c.len());
}

fn any_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some(".".into())),
        Just(Some("..".into())),
        Just(Some("/".into())),
        Just(Some(" / ".into())),
        "\\PC{0,40}".prop_map(Some),
        "[./\\x00-\\x1f ]{0,8}".prop_map(Some),
        ".{0,600}".prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rendered_components_are_always_safe(
        artist in any_text(), album in any_text(), title in any_text(), genre in any_text(),
        stem in "\\PC{0,300}", track in proptest::option::of(0u32..100_000),
        template_ix in 0usize..5,
    ) {
        let templates = [
            DEFAULT_TEMPLATE,
            "$genre/$artist/$album/$title",
            "[$genre]/[$artist]/$title",
            "%the{$artist}/%initial{$album}/..",
            "$title$title$title$title",
        ];
        let t = Track { artist, album, title, genre, track, ..Track::default() };
        let layout = Layout::new(&[(String::new(), templates[template_ix].to_owned())], false).unwrap();
        let file = FileName { stem: &stem, ext: "flac" };
        for placement in layout.render(&t, &file) {
            for c in &placement.components {
                check_component(c);
            }
            prop_assert!(placement.components.last().unwrap().ends_with(".flac"));
        }
    }

    #[test]
    fn disambiguated_names_stay_safe(name in "\\PC{1,300}", n in 2u32..100_000) {
        let base = musicfs_layout::sanitize_component(&name, "mp3");
        let d = musicfs_layout::disambiguate(&base, "mp3", n);
        check_component(&d);
        prop_assert!(d.ends_with(".mp3"));
        prop_assert_ne!(d, base);
    }

    #[test]
    fn parser_never_panics(src in "\\PC{0,60}") {
        let _ = Template::parse(&src);
    }
}
