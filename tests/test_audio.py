"""`ivr audio build` with gTTS faked at its HTTP edge; how the hotline plays and serves audio."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import responses

from ivr.calls import audio
from ivr.calls.prompts import LANGUAGES, Prompts
from ivr.commands.audio import audio_group
from ivr.devtools.emulator import Call
from ivr.settings import settings
from tests.conftest import TOKEN

GOOGLE = re.compile(r"https://translate\.google\.[a-z.]+/_/TranslateWebserverUi/data/batchexecute")


def batchexecute(request) -> tuple[int, dict, str]:
    """Answer as Google does, with base64 audio that names the text and host it was asked for."""
    rpc = json.loads(parse_qs(request.body)["f.req"][0])
    text, lang = json.loads(rpc[0][0][1])[:2]
    host = request.url.split("/")[2]
    fake_mp3 = b"ID3" + f"{host}|{lang}|{text}".encode()
    inner = json.dumps([base64.b64encode(fake_mp3).decode()])
    payload = json.dumps(
        [["wrb.fr", "jQ1olc", inner, None, None, None, "generic"]], separators=(",", ":")
    )
    return 200, {}, f")]}}'\n\n{len(payload)}\n{payload}\n"


@pytest.fixture
def google():
    """gTTS's HTTP requests, answered offline; `google.calls` counts them."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, GOOGLE, callback=batchexecute)
        yield mock


@pytest.fixture
def offline():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, GOOGLE, body=requests.ConnectionError("Host is not reachable"))
        yield mock


@pytest.fixture
def audio_dir(tmp_path) -> Path:
    return tmp_path / "audio"


@pytest.fixture
def build(app):
    runner = app.test_cli_runner(mix_stderr=False)

    def run(*args: str):
        return runner.invoke(audio_group, ["build", *args])

    return run


def expected(prompts_dir: Path) -> dict[str, int]:
    prompts = Prompts(prompts_dir)
    return {lang: len(audio.spoken(prompts, lang)) for lang in LANGUAGES}


def mp3s(audio_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(audio_dir)): p.read_bytes() for p in audio_dir.rglob("*.mp3")}


def test_build_renders_every_prompt_with_gtts(build, google, audio_dir, prompts_dir):
    result = build()
    assert result.exit_code == 0, result.output + result.stderr
    counts = expected(prompts_dir)
    manifest = json.loads((audio_dir / "manifest.json").read_text())
    assert {lang: len(manifest[lang]) for lang in LANGUAGES} == counts
    assert len(mp3s(audio_dir)) == sum(counts.values())
    # Every digit is rendered, so numbers are read in the rendered voice too.
    assert {f"digit_{d}" for d in range(10)} <= set(manifest["es"])
    # The menu template is rendered once per topic, filled as the menu fills it.
    topic = Prompts(prompts_dir).topics("en")[0]
    entry = manifest["en"][f"menu_option:{topic.name}"]
    text = (prompts_dir / "en/menu_option.txt").read_text().strip()
    spoken_text = text.format(label=topic.label, key=topic.number)
    # The file is what gTTS wrote from Google's answer, with the configured accent.
    rendered = (audio_dir / entry["file"]).read_bytes()
    assert rendered == f"ID3translate.google.us|en|{spoken_text}".encode()
    es_file = manifest["es"]["welcome"]["file"]
    assert (audio_dir / es_file).read_bytes().startswith(b"ID3translate.google.com.mx|es|")
    assert not list(audio_dir.rglob(".tmp-*"))


def test_rebuild_renders_only_the_edited_prompt(build, google, audio_dir, prompts_dir):
    assert build().exit_code == 0
    before = mp3s(audio_dir)
    calls = len(google.calls)
    assert build().exit_code == 0
    assert len(google.calls) == calls  # nothing changed, nothing rendered

    (prompts_dir / "es/goodbye.txt").write_text("Gracias por llamar. Adiós.\n", encoding="utf-8")
    result = build()

    assert result.exit_code == 0, result.output
    assert "rendered 1 file(s)" in result.output
    assert len(google.calls) == calls + 1
    after = mp3s(audio_dir)
    new = set(after) - set(before)
    assert len(new) == 1 and new.pop().startswith("es/")
    manifest = json.loads((audio_dir / "manifest.json").read_text())
    assert (
        (audio_dir / manifest["es"]["goodbye"]["file"])
        .read_bytes()
        .endswith("Gracias por llamar. Adiós.".encode())
    )


def test_check_reports_missing_and_stale(build, google, audio_dir, prompts_dir):
    result = build("--check")
    assert result.exit_code == 1
    assert "missing en/welcome" in result.output
    assert len(google.calls) == 0 and not audio_dir.exists()

    assert build().exit_code == 0
    result = build("--check")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output

    (prompts_dir / "en/welcome.txt").write_text("Hello, this is a changed welcome.\n")
    calls = len(google.calls)
    result = build("--check")
    assert result.exit_code == 1
    assert "stale en/welcome" in result.output.splitlines()
    assert len(google.calls) == calls


def test_prune_deletes_only_unused_audio(build, google, audio_dir, prompts_dir):
    assert build().exit_code == 0
    old = json.loads((audio_dir / "manifest.json").read_text())["en"]["goodbye"]["file"]
    (prompts_dir / "en/goodbye.txt").write_text("Thank you for calling. Bye.\n")

    assert build().exit_code == 0
    assert (audio_dir / old).exists()  # kept until pruned
    result = build("--prune")

    assert result.exit_code == 0, result.output
    assert "pruned 1 unused file(s)" in result.output
    assert not (audio_dir / old).exists()
    manifest = json.loads((audio_dir / "manifest.json").read_text())
    assert len(mp3s(audio_dir)) == sum(len(entries) for entries in manifest.values())
    assert build("--check").exit_code == 0


def test_network_failure_is_one_line_and_keeps_audio(app, build, audio_dir, prompts_dir):
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, GOOGLE, callback=batchexecute)
        assert build().exit_code == 0
    before = mp3s(audio_dir)
    manifest = (audio_dir / "manifest.json").read_bytes()
    (prompts_dir / "en/goodbye.txt").write_text("Thank you for calling. Bye.\n")

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, GOOGLE, body=requests.ConnectionError("Host is not reachable"))
        result = build()

    assert result.exit_code == 1
    assert result.output == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "audio build failed after 0 of 1 file(s)" in result.stderr
    assert mp3s(audio_dir) == before
    assert json.loads((audio_dir / "manifest.json").read_bytes()) == json.loads(manifest)
    assert not list(audio_dir.rglob(".tmp-*"))


def test_first_build_offline_writes_no_audio(build, offline, audio_dir):
    result = build()
    assert result.exit_code == 1
    assert "Failed to connect" in result.stderr
    assert mp3s(audio_dir) == {}


def plays(call: Call) -> list[str]:
    return [el.text for twiml in call.chain for el in twiml.iter("Play")]


def test_stale_audio_is_never_played(app, build, google, prompts_dir):
    assert build().exit_code == 0
    manifest = json.loads((Path(settings(app).audio_dir) / "manifest.json").read_text())
    client = app.test_client()

    call = Call(client, TOKEN)
    call.answer()
    call.press("1")
    welcome = f"/audio/{manifest['en']['disclaimer']['file']}"
    assert welcome in plays(call) and call.said() == []

    (prompts_dir / "en/disclaimer.txt").write_text("This hotline gives general information.\n")
    call = Call(client, TOKEN)
    call.answer()
    call.press("1")
    assert welcome not in plays(call)
    assert "This hotline gives general information." in call.heard()

    assert build().exit_code == 0
    call = Call(client, TOKEN)
    call.answer()
    call.press("1")
    assert call.said() == []
    assert [u for u in plays(call) if u.startswith("/audio/en/")][0] != welcome


def test_numbers_are_read_in_one_voice(app, build, google):
    """The reference's digits are rendered too, so the whole readback is <Play>, never mixed."""
    assert build().exit_code == 0
    call = Call(app.test_client(), TOKEN)
    call.answer()
    call.press("2")
    call.press("8")
    twiml = call.follow(
        call.twiml.find("Record").get("action"),
        RecordingUrl="https://api.twilio.com/x",
        RecordingSid="RE" + "1" * 32,
        RecordingDuration="7",
    )
    assert twiml.find(".//Say") is None and twiml.find(".//Play") is not None
    # 312 555 0123: a pause after each of the first two groups of digits.
    assert [el.tag for el in twiml.find("Gather")].count("Pause") == 2


def test_audio_is_served_with_cache_headers(app, build, google):
    assert build().exit_code == 0
    manifest = json.loads((Path(settings(app).audio_dir) / "manifest.json").read_text())
    url = f"/audio/{manifest['es']['welcome']['file']}"
    client = app.test_client()

    response = client.get(url, buffered=True)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/mpeg"
    cache = response.headers["Cache-Control"]
    assert "immutable" in cache
    assert int(re.search(r"max-age=(\d+)", cache)[1]) >= 365 * 24 * 3600
    assert response.data.startswith(b"ID3")
    # Served by WhiteNoise before Flask, with the same security headers (issue 22).
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    etag = response.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag}, buffered=True)
    assert again.status_code == 304 and again.data == b""
    assert client.get("/audio/es/0000000000000000.mp3").status_code == 404
    assert client.get("/audio/manifest.json").status_code == 404


def test_audio_built_while_running_is_served(app, google, tmp_path):
    """WhiteNoise learns of new files when the manifest changes, without a restart."""
    client = app.test_client()
    assert client.get("/audio/manifest.json").status_code == 404
    assert app.test_cli_runner().invoke(audio_group, ["build"]).exit_code == 0
    manifest = json.loads((tmp_path / "audio" / "manifest.json").read_text())
    response = client.get(f"/audio/{manifest['en']['goodbye']['file']}", buffered=True)
    assert response.status_code == 200


def test_only_audio_listed_in_the_manifest_is_served(app, build, google, audio_dir):
    """Files on disk that no manifest entry names (left over, copied by hand, half-written by a
    running build) are never served; an entry whose file was deleted is a 404, not an error."""
    assert build().exit_code == 0
    client = app.test_client()
    manifest = json.loads((audio_dir / "manifest.json").read_text())
    listed = manifest["en"]["goodbye"]["file"]
    stray = audio_dir / "en" / "0123456789abcdef.mp3"
    stray.write_bytes(b"ID3 not in the manifest")
    partial = audio_dir / "en" / ".tmp-abc.mp3"
    partial.write_bytes(b"ID3 half")
    os.utime(audio_dir / "manifest.json", ns=(0, 0))  # a new stamp: the folder is scanned again

    assert client.get(f"/audio/{listed}", buffered=True).status_code == 200
    assert client.get("/audio/en/0123456789abcdef.mp3").status_code == 404
    assert client.get("/audio/en/.tmp-abc.mp3").status_code == 404
    assert client.get("/audio/manifest.json").status_code == 404

    (audio_dir / listed).unlink()
    os.utime(audio_dir / "manifest.json", ns=(1, 1))
    assert client.get(f"/audio/{listed}").status_code == 404
    assert client.get("/voice/unknown").status_code == 404  # the app behind still answers


def test_written_files_are_world_readable_whatever_the_umask(build, google, audio_dir):
    """The web server may run as another user than whoever ran the build."""
    old = os.umask(0o077)
    try:
        assert build().exit_code == 0
    finally:
        os.umask(old)
    files = [audio_dir / "manifest.json", *audio_dir.rglob("*.mp3")]
    assert {path.stat().st_mode & 0o777 for path in files} == {0o644}


def test_failure_midway_keeps_what_was_rendered(build, google, audio_dir, prompts_dir):
    assert build().exit_code == 0
    before = json.loads((audio_dir / "manifest.json").read_text())
    answers = iter([True, True])

    def flaky(request):
        if next(answers, False):
            return batchexecute(request)
        raise requests.ConnectionError("Host is not reachable")

    for name in ("error", "goodbye", "invalid"):
        (prompts_dir / f"en/{name}.txt").write_text(f"A short {name} prompt.\n")
    google.remove(responses.POST, GOOGLE)
    google.add_callback(responses.POST, GOOGLE, callback=flaky)
    result = build()

    assert result.exit_code == 1
    assert "audio build failed after 2 of 3 file(s)" in result.stderr
    after = json.loads((audio_dir / "manifest.json").read_text())
    assert after["en"]["error"] != before["en"]["error"]
    assert after["en"]["goodbye"] != before["en"]["goodbye"]
    assert after["en"]["invalid"] == before["en"]["invalid"]  # stale, so never played
    assert (audio_dir / "manifest.json").stat().st_mode & 0o777 == 0o644
    assert not list(audio_dir.rglob(".tmp-*"))
    assert build("--check").output.strip().splitlines()[0] == "stale en/invalid"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_topic_said_without_today_keeps_its_recorded_voice(make_app, google, lang):
    """In the evening topic 5 ends "Contact us." instead of the post's "Contact us today."
    (issue 23): that version is rendered too, so the topic is still played, never switched to
    Twilio's <Say> voice."""
    from tests.test_content import HOURS, at, start

    app = make_app(OFFICE_HOURS=HOURS, CLOCK=at(2026, 11, 30, 18, 0))  # Monday evening
    result = app.test_cli_runner(mix_stderr=False).invoke(audio_group, ["build"])
    assert result.exit_code == 0, result.output + result.stderr
    call = start(app, lang)
    call.press("5")
    played = " ".join(plays(call))
    topic = Prompts(Path(settings(app).prompts_dir)).topic(lang, 5)
    assert topic is not None
    closed = Prompts(Path(settings(app).prompts_dir)).closed_ending(lang, topic.body)
    assert closed is not None  # the post's topic 5 ends "Contact us today."
    assert audio.audio_file(lang, settings(app).gtts_tld(lang), closed, False) in played
    assert call.said() == []
