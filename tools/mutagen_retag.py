"""Re-tags files as Picard and beets do, with mutagen: a new title and a 150 KB cover; an MP3
also gets an APEv2 tag, so both of its ends change. Used by tests/cache.rs and
tools/bench_cache.py. Usage: python3 tools/mutagen_retag.py FILE..."""
import base64, os, sys

from mutagen.apev2 import APEv2
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3, TIT2
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggvorbis import OggVorbis

cover = b"\xff\xd8\xff\xe0" + os.urandom(150000)
title = "A Title Retagged By Mutagen, Longer Than Before"
pic = Picture()
pic.type, pic.mime, pic.data = 3, "image/jpeg", cover
for p in sys.argv[1:]:
    if p.endswith(".m4a"):
        f = MP4(p)
        f["\xa9nam"] = [title]
        f["covr"] = [MP4Cover(cover, MP4Cover.FORMAT_JPEG)]
        f.save()
    elif p.endswith(".mp3"):
        t = ID3(p)
        t.add(TIT2(encoding=3, text=title))
        t.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="", data=cover))
        t.save(p)
        a = APEv2()
        a["Title"] = title
        a["Cover Art (Front)"] = cover[:20000]
        a.save(p)
    elif p.endswith(".flac"):
        f = FLAC(p)
        f["title"] = title
        f.add_picture(pic)
        f.save()
    elif p.endswith(".ogg"):
        f = OggVorbis(p)
        f["title"] = title
        f["metadata_block_picture"] = [base64.b64encode(pic.write()).decode()]
        f.save()
    else:
        sys.exit(f"mutagen_retag: no re-tag for {p}")
