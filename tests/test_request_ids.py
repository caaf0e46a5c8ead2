"""server/call_record.py's request ids: a client's own valid id is kept; otherwise each
request gets a fresh one, never repeated, also across forked workers."""
from __future__ import annotations

import os
import re

from server import call_record


def test_a_clients_valid_id_is_kept_and_anything_else_gets_a_fresh_one():
    assert call_record.request_id("job-42/retry.1") == "job-42/retry.1"
    for bad in (None, "", "has space", 'quo"te', "x" * 129):
        fresh = call_record.request_id(bad)
        assert re.fullmatch(r"[0-9a-f]{32}", fresh), (bad, fresh)


def test_fresh_ids_never_repeat_across_many_system_reads():
    ids = [call_record.request_id(None) for _ in range(call_record._IDS_PER_READ * 4 + 7)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_worker_does_not_hand_out_the_ids_its_parent_holds():
    call_record.request_id(None)  # the parent now holds ids read for later requests
    held = set(call_record._FRESH_IDS)
    assert held
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first ids, then leave at once
        try:
            os.write(write, " ".join(call_record.request_id(None) for _ in range(5)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = set(pipe.read().split())
    os.waitpid(pid, 0)
    assert len(child_ids) == 5 and not child_ids & held
