"""Secret hygiene after the whole suite (this file runs last): every credential, token and secret the tests sent
to the API or were given by it (conftest.remember_secrets: passwords, AWS secret keys, SSH keys, repository tokens,
API keys, access and refresh tokens, signing secrets) is looked for in every service log, in every event the
suite recorded from the bus, and in a pg_dump of the database: none may be there in plaintext."""
import os
import subprocess

from conftest import SECRETS


def test_no_secret_the_suite_used_is_in_logs_events_or_the_database(stack):
    assert len(SECRETS) >= 20, "the suite should have used many secrets by now (run the whole suite)"
    dump = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-p", str(stack.pg_port), "-U", "postgres", "vigil"], capture_output=True,
                          text=True, check=True).stdout
    logs = {name: stack.log(name[:-4]) for name in os.listdir(stack.logs) if name.endswith(".log")}
    with stack.bus.lock:
        # The event stream (vigil.events.*). Jobs are work items, delivered once to their worker and deleted on ack;
        # an email job carries the link it sends.
        events = b"\n".join(d for s, _, d in stack.bus.messages if s.startswith("vigil.events.")).decode(errors="replace")
    leaks = []
    for secret in sorted(SECRETS):
        where = [n for n, text in [("pg_dump", dump), ("events", events)] + sorted(logs.items()) if secret in text]
        if where:
            leaks.append((secret[:6] + "…", len(secret), where))
    print(f"secret hygiene: {len(SECRETS)} secrets checked against {len(logs)} logs, {len(events)} bytes of events, "
          f"{len(dump)} bytes of dump")
    assert not leaks, leaks
