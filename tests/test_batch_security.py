"""A batch job writes only inside OUTPUT, reads links out of INPUT only when told, and never echoes inputs.

The corpus is the one an adversarial bucket or list file used against the first version: keys and list
entries with ``..`` (which wrote ``/root/x.png``), empty and absolute segments, backslashes and control
characters; a symbolic link inside OUTPUT; a link in INPUT to a secret file; ``/etc/passwd`` in a list.
Each must become that input's error row — never a write outside OUTPUT, never an aborted job. Planning
is checked without Ray; a few runs go end to end on the session's Ray cluster with a tiny model.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest

from pixelplexus.batch.manifest import read_manifest
from pixelplexus.batch.pipeline import StageSettings, read_and_decode, safe_detail
from pixelplexus.batch.planning import plan
from pixelplexus.cli import main
from pixelplexus.io.images import ImageDecodeError, decode_image
from pixelplexus.io.locations import (
    Location,
    LocationError,
    OutsideOutput,
    UnsafeKey,
    check_key,
    scan_inputs,
    write_output,
)
from pixelplexus.io.s3 import S3Settings
from support import corpus
from support.batch import request, write_folder

PNG = corpus.good_images(size=(12, 10))["png_rgb"].data
SECRET = b"root:x:0:0:root:/root:/bin/bash\nPIXELPLEXUS-SECRET-7f3a9c41e0\n"

TRAVERSAL_KEYS = [  # relative to INPUT (a prefix), as an adversarial bucket holds them
    "../../../../root/x.png",
    "../../escape.png",
    "a//b.png",
    "./dot.png",
    "cr\rline.png",
    "tab\t.png",
    "nul\x00.png",
    "back\\..\\..\\slash.png",
]


def manifest_text(table) -> str:
    """Every cell of a manifest, as one text (to look for what must not be there)."""
    return "\n".join(str(value) for row in table.to_pylist() for value in row.values())


def files_under(root: Path) -> set[str]:
    """Files and links below ``root`` (links are not followed), relative to it."""
    found = set()
    for folder, dirs, files in os.walk(root):
        names = files + [name for name in dirs if os.path.islink(os.path.join(folder, name))]
        found |= {os.path.relpath(os.path.join(folder, name), root) for name in names}
    return found


# ------------------------------------------------------------------------------------------ keys


def test_check_key_refuses_what_could_leave_a_folder_and_rewrites_nothing():
    for key in ["a.png", "a/b/c.JPG", "x..y.png", "...png", "é/ü.png", "a b/c.png"]:
        assert check_key(key) == key
    bad = {
        "": "empty",
        "/etc/x.png": "absolute",
        "../x.png": "'..'",
        "a/../../x.png": "'..'",
        "a/./x.png": "'.'",
        "a//x.png": "empty segment",
        "a/": "empty segment",
        "a\\..\\x.png": "backslash",
        "C:/x.png": "drive",
        "a\x00.png": "control",
        "a\nb.png": "control",
        "a\rb.png": "control",
        "a\x85b.png": "control",
        "a\u2028b.png": "control",
    }
    for key, rule in bad.items():
        with pytest.raises(UnsafeKey, match=rule):
            check_key(key)


def test_s3_listing_refuses_traversal_keys_as_their_own_error_rows(s3_bucket, tmp_path, weights):
    s3 = boto3.client("s3")
    for key in ["scans/ok.png", "victim/precious.png", "scans2/../victim/precious.png"] + [
        f"scans/{key}" for key in TRAVERSAL_KEYS
    ]:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=PNG)
    items = {item.key: item for item in scan_inputs(f"s3://{s3_bucket}/scans/", S3Settings.from_env())}
    assert [key for key, item in items.items() if not item.reason] == ["ok.png"]
    refused = [item for item in items.values() if item.reason]
    assert len(refused) == len(TRAVERSAL_KEYS) and {i.reason for i in refused} == {"unsafe key"}
    assert all("\n" not in i.key + i.uri + i.detail and "\x00" not in i.key + i.uri for i in refused)
    assert items["cr\\x0dline.png"].detail.startswith("'cr\\x0dline.png': the key has a control character")

    # the whole bucket as INPUT: scans2/../victim/precious.png must not replace victim/precious.png's output
    the_plan = plan(request(weights, "enhance", f"s3://{s3_bucket}/", tmp_path / "out"))
    assert the_plan.todo.column("output_key").to_pylist() == ["scans/ok.png", "victim/precious.png"]
    rows = {row["input_key"]: row for row in the_plan.refused.to_pylist()}
    assert rows["scans2/../victim/precious.png"]["status"] == "error"
    assert rows["scans2/../victim/precious.png"]["output_key"] is None
    assert not (tmp_path / "out").exists()  # planning writes nothing


LIST_ENTRIES = {  # list entry → why it is refused ("" when it is used)
    "ok.png": "",
    "sub/ok2.png": "",
    "../outside.png": "unsafe key",
    "sub/../../outside.png": "unsafe key",
    "./ok.png": "unsafe key",
    "sub\\..\\..\\x.png": "unsafe key",
    "/tmp/../etc/x.png": "unsafe key",
    "file:///tmp/../../etc/y.png": "unsafe key",
    "s3://other/../../../../root/y.png": "unsafe key",
    "s3://other//root/y.png": "unsafe key",
    "s3:///nobucket.png": "unsafe key",
    "/etc/passwd": "not an image file name",
    "http://example.com/a.png": "bad list entry",
}


@pytest.mark.parametrize("where", ["local", "s3"])
def test_list_entries_are_checked_wherever_the_list_is(where, tmp_path, s3_bucket):
    text = "\n".join(LIST_ENTRIES) + "\n"
    if where == "local":
        write_folder(tmp_path / "in", {"ok.png": PNG, "sub/ok2.png": PNG, "list.txt": text.encode()})
        listed = str(tmp_path / "in" / "list.txt")
    else:
        boto3.client("s3").put_object(Bucket=s3_bucket, Key="lists/list.txt", Body=text.encode())
        listed = f"s3://{s3_bucket}/lists/list.txt"
    items = scan_inputs(listed, S3Settings.from_env())
    assert {item.key: item.reason for item in items} == {
        entry.replace("\\", "\\\\"): reason for entry, reason in LIST_ENTRIES.items()
    }
    assert all(item.detail for item in items if item.reason)
    ok = {item.key: item.uri for item in items if not item.reason}
    if where == "s3":
        assert ok == {
            "ok.png": f"s3://{s3_bucket}/lists/ok.png",
            "sub/ok2.png": f"s3://{s3_bucket}/lists/sub/ok2.png",
        }


def test_links_out_of_input_are_refused_unless_followed(tmp_path):
    write_folder(tmp_path / "outside", {"secret.png": SECRET, "dir/inner.png": PNG})
    write_folder(tmp_path / "in", {"real.png": PNG, "list.txt": b"link.png\nreal.png\nlinked/inner.png\n"})
    (tmp_path / "in" / "link.png").symlink_to(tmp_path / "outside" / "secret.png")
    (tmp_path / "in" / "inside.png").symlink_to(tmp_path / "in" / "real.png")  # stays inside: fine
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "outside" / "dir")
    settings = S3Settings()

    items = {item.key: item.reason for item in scan_inputs(str(tmp_path / "in"), settings)}
    outside = "symlink points outside INPUT"
    assert items == {"inside.png": "", "link.png": outside, "linked": outside, "real.png": ""}
    listed = {item.key: item.reason for item in scan_inputs(str(tmp_path / "in" / "list.txt"), settings)}
    assert listed == {"link.png": outside, "linked/inner.png": outside, "real.png": ""}

    followed = scan_inputs(str(tmp_path / "in"), settings, follow_symlinks=True)
    assert {item.key: item.reason for item in followed} == {
        "inside.png": "",
        "link.png": "",
        "linked/inner.png": "",
        "real.png": "",
    }
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in")  # a cycle ends
    assert len(scan_inputs(str(tmp_path / "in"), settings, follow_symlinks=True)) >= 4


def test_a_file_swapped_for_a_link_after_the_listing_is_not_read(tmp_path):
    write_folder(tmp_path / "in", {"a.png": PNG, "b.png": PNG})
    write_folder(tmp_path / "outside", {"secret.png": PNG})
    items = scan_inputs(str(tmp_path / "in"), S3Settings())
    (tmp_path / "in" / "a.png").unlink()
    (tmp_path / "in" / "a.png").symlink_to(tmp_path / "outside" / "secret.png")
    columns = {"input": "uri", "input_key": "key", "output_key": "key", "within": "within"}
    batch = {
        name: np.array([getattr(i, field) for i in items], dtype=object) for name, field in columns.items()
    }
    out = read_and_decode(batch, StageSettings(S3Settings(), Location.parse(str(tmp_path / "out"))))
    assert list(out["status"]) == ["error", ""] and list(out["reason"]) == [
        "symlink points outside INPUT",
        "",
    ]


def test_a_list_naming_etc_passwd_gets_an_error_row_not_an_aborted_job(tmp_path, weights, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "list.txt").write_text("/etc/passwd\n../x.png\n")  # refused entries only: no Ray
    model = ["--model", str(weights["enhance"])]
    assert main(["enhance", str(tmp_path / "in" / "list.txt"), str(tmp_path / "out"), *model]) == 0
    assert "2 inputs: 0 ok, 2 error" in capsys.readouterr().out
    rows = read_manifest(str(tmp_path / "out")).to_pylist()
    assert [(r["input_key"], r["reason"]) for r in rows] == [
        ("../x.png", "unsafe key"),
        ("/etc/passwd", "not an image file name"),
    ]
    # a refusal (exit 2) creates nothing, not even OUTPUT's folder
    assert main(["enhance", str(tmp_path / "in"), str(tmp_path / "out2"), *model]) == 2
    assert "no images under" in capsys.readouterr().err and not (tmp_path / "out2").exists()


# ------------------------------------------------------------------------------------------ writes


def test_writes_stay_inside_output_whatever_links_it_holds(tmp_path, s3_bucket):
    out = tmp_path / "out"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "victim.png").write_bytes(b"precious")
    out.mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere")
    (out / "link.png").symlink_to(tmp_path / "victim.png")
    local, settings = Location.parse(str(out)), S3Settings()

    assert write_output(local, "a/b/new.png", b"x", settings) == str(out / "a" / "b" / "new.png")
    for key, error in [
        ("sub/x.png", OutsideOutput),
        ("sub/deeper/x.png", OutsideOutput),
        ("link.png", OutsideOutput),
        ("../escape.png", UnsafeKey),
        ("a/../../escape.png", UnsafeKey),
    ]:
        with pytest.raises(error):
            write_output(local, key, b"y", settings)
    assert os.listdir(tmp_path / "elsewhere") == [] and (tmp_path / "victim.png").read_bytes() == b"precious"
    assert files_under(tmp_path) == {"victim.png", "out/sub", "out/link.png", "out/a/b/new.png"}

    with pytest.raises(LocationError, match="not a clean key"):
        Location.parse(f"s3://{s3_bucket}/out/../elsewhere")
    s3 = boto3.client("s3")
    remote = Location.parse(f"s3://{s3_bucket}/out")
    write_output(remote, "a/ok.png", b"x", S3Settings.from_env())
    with pytest.raises(UnsafeKey):
        write_output(remote, "../../escape.png", b"y", S3Settings.from_env())
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]] == ["out/a/ok.png"]


# ------------------------------------------------------------------------------------------ details


def test_decode_errors_never_quote_the_input(tmp_path):
    write_folder(tmp_path / "in", {"secret.png": SECRET, "ok.png": PNG, "cut.png": PNG[:60]})
    rows = {
        "input": [str(tmp_path / "in" / name) for name in ("secret.png", "ok.png", "cut.png")],
        "input_key": ["secret.png", "ok.png", "cut.png"],
        "output_key": ["secret.png", "ok.png", "cut.png"],
    }
    batch = {name: np.array(values, dtype=object) for name, values in rows.items()}
    out = read_and_decode(batch, StageSettings(S3Settings(), Location.parse(str(tmp_path / "out"))))
    status = dict(zip(out["input_key"], out["status"]))
    assert status == {"secret.png": "error", "ok.png": "", "cut.png": "error"}
    details = dict(zip(out["input_key"], out["detail"]))
    text = " ".join(str(value) for name in ("reason", "detail") for value in out[name])
    assert "root:x" not in text and "PIXELPLEXUS-SECRET" not in text and "b'" not in text
    assert details["secret.png"].startswith("cannot decode image: not a recognised image format")
    assert "withheld" not in details["cut.png"]  # says what is wrong
    with pytest.raises(ImageDecodeError) as error:  # the decoder itself no longer quotes the file
        decode_image(SECRET)
    assert "root:x" not in str(error.value) and "PIXELPLEXUS" not in str(error.value)

    detail = "cannot decode image: corrupt image data (broken PNG file)"
    assert safe_detail(detail, PNG, reason="r") == detail
    assert "withheld" in safe_detail("says PIXELPLEXUS-SECRET here", b"x" * 100_000 + SECRET, reason="r")
    assert "withheld" in safe_detail("starts with b'\\x00\\x01'", b"", reason="r")
    # what a decoder's message quoting the file's start (as imageio's once did) becomes
    assert safe_detail(f"the file starts with {SECRET[:16]!r}", SECRET, reason="r").startswith("r; ")


# ------------------------------------------------------------------------------------------ with Ray


@pytest.mark.slow
def test_hostile_bucket_to_local_and_s3_outputs(ray_cluster, s3_bucket, tmp_path, weights, capsys):
    s3 = boto3.client("s3")
    keys = ["victim/precious.png", "scans/ok.png", "scans2/../victim/precious.png"]
    keys += [f"scans/{key}" for key in TRAVERSAL_KEYS]
    for key in keys:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=PNG)
    s3.put_object(Bucket=s3_bucket, Key="lists/in.txt", Body="\n".join(LIST_ENTRIES).encode())
    s3.put_object(Bucket=s3_bucket, Key="lists/ok.png", Body=PNG)
    deep = tmp_path / "a" / "b" / "out"  # '..' keys would land in tmp_path / "a", …
    deep.mkdir(parents=True)
    (deep / "victim").mkdir()
    (deep / "victim" / "precious.png").write_bytes(b"precious")  # an earlier output, no manifest row
    model = ["--model", str(weights["enhance"]), "--tile", "0", "--batch-size", "4"]

    assert main(["enhance", f"s3://{s3_bucket}/", str(deep), *model]) == 0
    assert f"{len(TRAVERSAL_KEYS) + 1} error" in capsys.readouterr().out
    (run,) = (deep / "_pixelplexus").glob("manifest-*")  # one run's manifest parts and run.json; no plan left
    assert files_under(tmp_path) == {
        "a/b/out/victim/precious.png",
        "a/b/out/scans/ok.png",
        "a/b/out/lists/ok.png",
        "a/b/out/_pixelplexus/lease.lock",  # the lease's lock stays (empty); the lease is released
        *(f"a/b/out/_pixelplexus/{run.name}/{part.name}" for part in run.iterdir()),
    }
    assert {part.suffix for part in run.iterdir()} == {".parquet", ".json"}
    assert (deep / "victim" / "precious.png").read_bytes() == b"precious"  # not overwritten
    table = read_manifest(str(deep))
    rows = {row["input_key"]: row for row in table.to_pylist()}
    assert table.num_rows == len(keys) + 1 and len(rows) == table.num_rows
    assert rows["scans2/../victim/precious.png"]["status"] == "error"
    assert rows["scans2/../victim/precious.png"]["reason"] == "unsafe key"
    assert rows["victim/precious.png"]["reason"] == "output present, no manifest row"

    # a list on S3 (entries relative to it, s3:// and local ones) to an S3 OUTPUT: keys stay clean
    assert main(["enhance", f"s3://{s3_bucket}/lists/in.txt", f"s3://{s3_bucket}/out", *model]) == 0
    written = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]]
    assert not [key for key in written if ".." in key or "//" in key or "\\" in key]
    assert [key for key in written if not key.startswith("out/_pixelplexus/")] == ["out/ok.png"]
    table = read_manifest(f"s3://{s3_bucket}/out")
    assert table.num_rows == len(LIST_ENTRIES)  # sub/ok2.png is not in the bucket: a read error
    statuses = {row["input_key"]: row["status"] for row in table.to_pylist()}
    assert statuses["ok.png"] == "ok" and statuses["/etc/passwd"] == "error"
    assert not [key for key in written if key.endswith("lease.json")]  # released


@pytest.mark.slow
def test_links_and_secrets_end_to_end(ray_cluster, tmp_path, weights, capsys):
    write_folder(tmp_path / "outside", {"secret.txt": SECRET})
    write_folder(
        tmp_path / "in", {"ok.png": PNG, "sub/x.png": PNG, "link.png": PNG, "plain-secret.png": SECRET}
    )
    (tmp_path / "in" / "passwd.png").symlink_to(tmp_path / "outside" / "secret.txt")
    (tmp_path / "in" / "list.txt").write_text(f"ok.png\n{tmp_path / 'outside' / 'secret.txt'}\n/etc/passwd\n")
    out = tmp_path / "out"
    (tmp_path / "elsewhere").mkdir()
    out.mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere")
    (out / "link.png").symlink_to(tmp_path / "outside" / "secret.txt")
    model = ["--model", str(weights["enhance"]), "--tile", "0"]

    assert main(["enhance", str(tmp_path / "in"), str(out), *model]) == 0
    rows = {row["input_key"]: row for row in read_manifest(str(out)).to_pylist()}
    assert {key: (row["status"], row["reason"]) for key, row in rows.items()} == {
        "ok.png": ("ok", ""),
        "passwd.png": ("error", "symlink points outside INPUT"),
        "plain-secret.png": ("error", "not a recognised image format"),
        "sub/x.png": ("error", "output path leaves OUTPUT"),
        "link.png": ("error", "output path leaves OUTPUT"),
    }
    assert (
        os.listdir(tmp_path / "elsewhere") == []
        and (tmp_path / "outside" / "secret.txt").read_bytes() == SECRET
    )

    # followed on request: the secret is read, and its error row does not quote it (nor does the output)
    assert main(["enhance", str(tmp_path / "in"), str(out), *model, "--follow-symlinks"]) == 0
    assert main(["enhance", str(tmp_path / "in" / "list.txt"), str(tmp_path / "out2"), *model]) == 0
    printed = capsys.readouterr()
    for folder in (out, tmp_path / "out2"):
        for manifest in (folder / "_pixelplexus").glob("manifest-*/*"):
            if manifest.suffix == ".json":
                text = manifest.read_text()
            else:
                text = manifest_text(pq.read_table(manifest)) + str(pq.read_schema(manifest).metadata)
            assert "PIXELPLEXUS-SECRET" not in text and "root:x:0" not in text, manifest
    assert "PIXELPLEXUS-SECRET" not in printed.out + printed.err and "root:x" not in printed.out + printed.err
    rows = {row["input_key"]: row for row in read_manifest(str(out)).to_pylist()}
    assert rows["passwd.png"]["reason"] == "not a recognised image format"
    listed = {row["input_key"]: row["reason"] for row in read_manifest(str(tmp_path / "out2")).to_pylist()}
    assert listed == {
        "ok.png": "",
        "/etc/passwd": "not an image file name",
        str(tmp_path / "outside" / "secret.txt"): "not an image file name",
    }
