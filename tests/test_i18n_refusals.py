"""Refusals, sign-in errors and job outcomes in the reader's language (issue #11).

A real server with a simulated GRBL mill: the same refusal comes in Lithuanian or German
when the caller asks for it with ``Accept-Language``, and in unchanged English without.
Job records keep English (the log and the database stay stable) and are shown localized:
over the API, the websocket hub and ``labbridge stream --lang``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labbridge.i18n import language, localize
from labbridge.model import JobProgress, MachineState
from labbridge.server.hub import Hub
from labbridge.streaming import texts as T
from tests.jobs_support import long_program, mill, write_program
from tests.test_api_machines import api, queue_job, state  # noqa: F401 (api is a fixture)
from tests.test_hub import Sink, until
from tests.test_stream_cli import cli, grbl_sim, jobs, write_config  # noqa: F401 (grbl_sim is a fixture)
from tests.web_support import Api, wait_for

LT = {"Accept-Language": "lt-LT,lt;q=0.9,en;q=0.5"}
DE = {"Accept-Language": "de-DE"}


def call(api: Api, role: str | None, method: str, path: str, lang: dict[str, str] | None = None, **kw: Any) -> Any:
    return api.client.request(method, path, headers={**api.headers(role), **(lang or {})}, **kw)


def test_a_command_refusal_comes_in_the_callers_language(api: Api) -> None:
    body = {"target": "rapid", "value": 60}
    english = call(api, "operator", "POST", "/api/machines/mill-1/override", json=body)
    lithuanian = call(api, "operator", "POST", "/api/machines/mill-1/override", LT, json=body)
    german = call(api, "operator", "POST", "/api/machines/mill-1/override", DE, json=body)
    assert english.status_code == lithuanian.status_code == german.status_code == 409
    assert english.json()["detail"] == "the rapid override is 25, 50 or 100%"
    assert lithuanian.json()["detail"] == "greitosios eigos korekcija gali būti 25, 50 arba 100 %"
    assert german.json()["detail"] == "der Eilgang-Override ist 25, 50 oder 100 %"
    assert lithuanian.headers["content-language"] == "lt" and german.headers["content-language"] == "de"


def test_a_drivers_refusal_is_translated_too(api: Api) -> None:
    """The GRBL driver raises in English; the command's answer renders it for the caller."""
    path = "/api/machines/mill-1/settings/$999"
    english = call(api, "technician", "PUT", path, json={"value": "1"})
    german = call(api, "technician", "PUT", path, DE, json={"value": "1"})
    assert english.status_code == german.status_code == 409
    assert "$999 is not a GRBL 1.1 setting" in english.json()["detail"]
    assert "$999 ist keine GRBL-1.1-Einstellung" in german.json()["detail"]


def test_sign_in_and_password_errors_in_lithuanian_and_german(api: Api) -> None:
    wrong = {"username": "nobody-lt", "password": "not the right one at all"}
    r = call(api, None, "POST", "/api/auth/login", LT, json=wrong)
    assert r.status_code == 401 and r.json()["detail"] == "neteisingas naudotojo vardas arba slaptažodis"
    r = call(api, None, "POST", "/api/auth/login", json={**wrong, "username": "nobody-en"})
    assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"
    r = call(api, None, "GET", "/api/auth/me", DE)
    assert r.status_code == 401 and r.json()["detail"] == "zuerst anmelden (kein Token angegeben)"
    weak = {"username": "pupil-1", "password": "abababab", "role": "viewer"}
    r = call(api, "admin", "POST", "/api/users", DE, json=weak)
    assert r.status_code == 422 and r.json()["detail"] == \
        "das Passwort nutzt höchstens drei verschiedene Zeichen; mehr verschiedene einmischen"
    r = call(api, "admin", "POST", "/api/users", json=weak)
    assert r.status_code == 422 and r.json()["detail"] == \
        "the password uses three different characters or fewer; mix more in"
    r = call(api, "admin", "POST", "/api/users", LT, json={**weak, "password": "password"})
    assert r.status_code == 422 and r.json()["detail"].startswith("tai vienas dažniausių slaptažodžių")
    taken = {"username": "viewer", "password": "a long and quiet river", "role": "viewer"}
    r = call(api, "admin", "POST", "/api/users", LT, json=taken)
    assert r.status_code == 409 and r.json()["detail"] == "naudotojas 'viewer' jau yra"


def test_a_role_refusal_and_an_unknown_machine(api: Api) -> None:
    r = call(api, "viewer", "POST", "/api/machines/mill-1/home", LT)
    assert r.status_code == 403 and r.json()["detail"].startswith("jūsų vaidmuo (viewer) neleidžia: ")
    r = call(api, "operator", "POST", "/api/machines/lathe-9/home", DE)
    assert r.status_code == 404 and r.json()["detail"] == "keine Maschine 'lathe-9'; im Labor gibt es: mill-1"


@pytest.mark.slow
def test_a_cancelled_jobs_message_is_stored_in_english_and_read_in_lithuanian(api: Api) -> None:
    entry = queue_job(api)
    r = api.call("operator", "POST", f"/api/queue/{entry['id']}/start")
    assert r.status_code == 200, r.text
    wait_for(lambda: (state(api)["job"] or {}).get("lines_acked", 0) > 2, 60, what="job progress")
    r = call(api, "operator", "POST", "/api/machines/mill-1/cancel", LT)
    assert r.status_code == 200 and r.json()["result"] == "užduotis atšaukta"  # the command's answer, too
    wait_for(lambda: api.ctx.store.queue_entry(entry["id"])["state"] == "cancelled", 60, what="cancelled entry")
    job_id = api.ctx.store.queue_entry(entry["id"])["job_id"]
    stored = api.ctx.lab.job_store().get(job_id)
    assert stored.message.startswith("cancelled after line ")  # the record keeps English
    assert "soft reset: the controller's buffers were discarded" in stored.message

    def record(lang: dict[str, str] | None) -> dict[str, Any]:
        jobs_ = call(api, "trainer", "GET", "/api/jobs?machine=mill-1", lang).json()
        return next(j for j in jobs_ if j["id"] == job_id)

    assert record(None)["message"] == stored.message
    lithuanian = record(LT)["message"]
    assert lithuanian.startswith("atšaukta po ") and "atstatyta: valdiklio buferiai išvalyti" in lithuanian
    assert f"po {stored.last_acked_line} eilutės" in lithuanian and "cancelled" not in lithuanian
    queue = call(api, "trainer", "GET", "/api/queue?machine=mill-1&all=true", LT).json()
    assert next(e for e in queue if e["id"] == entry["id"])["message"].startswith("atšaukta po ")
    events = call(api, "technician", "GET", f"/api/jobs/{job_id}/events", LT).json()
    assert any(e["event"] == "job_cancelled" and e["message"].startswith("atšaukta po ")
               for e in events)  # event names never change; their text is read in the caller's language
    audit = api.ctx.store.audit_log(limit=10, machine="mill-1", username="operator")
    assert any(e["action"] == "cancel" and e["outcome"] == "ok" and "job cancelled" in e["detail"] for e in audit)


def test_localize_renders_nested_notes_and_leaves_unknown_text_alone() -> None:
    message = "; ".join([
        T.CANCELLED_DETAIL.format(where=T.AFTER_LINE.format(line=19), detail="; ".join([
            T.SOFT_RESET, T.UNLOCKED.format(alarm="ALARM:3")])),
        T.STOPPED_ON_NEVER_RAN.format(line=5, first=6, last=19),
        "something a controller said; verbatim",
    ])
    german = localize(message, "de")
    assert german == ("abgebrochen nach Zeile 19 (Reset: die Puffer der Steuerung wurden verworfen; nach ALARM:3 "
                      "des Resets entsperrt: vor genauer Arbeit neu referenzieren); die Maschine blieb bei Zeile 5 "
                      "stehen; die Zeilen 6 bis 19 wurden quittiert, aber nie ausgeführt; something a controller "
                      "said; verbatim")
    assert localize(message, "en") == message
    with language("lv"):
        assert localize(T.STARVED_AT.format(seconds="2.5", line=40)) == \
            "2.5 s nebija datu pie 40. rindas — pārbaudiet tur virsmu"


async def test_the_hub_sends_each_client_job_texts_in_its_own_language() -> None:
    machine = MachineState("m")
    hub = Hub()
    hub.start({"m": machine})
    english, lithuanian = Sink(), Sink()
    try:
        client_en = hub.connect(english.send, english.close, "u1", "viewer", "t1")
        with language("lt"):
            client_lt = hub.connect(lithuanian.send, lithuanian.close, "u2", "viewer", "t2")
        for client in (client_en, client_lt):
            hub.subscribe(client, ["m"])
        await until(lambda: english.of("snapshot") and lithuanian.of("snapshot"))
        text = T.CANCELLED.format(where=T.BEFORE_FIRST_ACK)
        hub.broadcast({"type": "job", "machine": "m", "outcome": "cancelled", "message": text}, "m")
        machine.update(job=JobProgress(job_id="j1", program="p.nc", state="interrupted", lines_total=10,
                                       message=T.LAST_SEEN.format(line=4)))
        await until(lambda: english.of("job") and lithuanian.of("job") and english.of("state")
                    and lithuanian.of("state"))
        assert english.of("job")[0]["message"] == text
        assert lithuanian.of("job")[0]["message"] == "atšaukta dar nepatvirtinus pirmosios eilutės"
        assert english.of("state")[-1]["changes"]["job"]["message"] == "the machine was last seen on line 4"
        assert lithuanian.of("state")[-1]["changes"]["job"]["message"] == "paskutinį kartą staklės matytos ties 4 eilute"
        assert json.dumps(lithuanian.of("job")[0], sort_keys=True).count('"type"') == 1  # keys unchanged
    finally:
        await hub.stop()


def test_stream_lang_de_prints_the_job_texts_in_german(tmp_path: Path, grbl_sim: Any) -> None:  # noqa: F811
    sim = grbl_sim(mill(), time_scale=20.0)
    config = write_config(tmp_path, mill(line_buffer=120))  # the config is wrong: GRBL has 79
    lines = long_program(30)
    lines.insert(15, "G1 X1.0000000000 Y1.0000000000 Z-1.0000000000 F600.0000000000 S8000.000000000000000000000")
    program = write_program(tmp_path, "long.nc", lines)
    result = cli(tmp_path, str(program), "-m", "mill-1", "--config", str(config), "--port", sim.port, "--yes",
                 "--lang", "de")
    assert result.returncode == 3, result.stderr
    assert "Zeile 16" in result.stderr and "error:11" in result.stderr
    assert "die Steuerung antwortete error:11" in result.stderr and "danach wurde nichts mehr gesendet" in result.stderr
    assert "Zeilen quittiert in" in result.stdout and "lines acknowledged" not in result.stdout
    (job,) = jobs(tmp_path)
    assert "the controller answered error:11" in job.message  # the record keeps English
