"""box/prochide.py's pure parts: which hidepid a mountinfo text gives /proc, which capability sets hold a capability."""

from __future__ import annotations

import pytest

from sdpo_ttt.sandbox.box.prochide import CAP_SETPCAP, CAP_SYS_ADMIN, HIDING, hidepid, holding

DOCKER = """153 68 0:64 / / rw,relatime master:4 - overlay overlay rw,lowerdir=/x
154 153 0:67 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw{opts}
155 153 0:68 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
69 154 0:67 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw{opts}
74 154 0:68 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
"""


@pytest.mark.parametrize("opts, want", [("", "0"), (",hidepid=invisible", "invisible"), (",hidepid=2,gid=5", "2"),
                                        (",gid=5,hidepid=ptraceable,subset=pid", "ptraceable")])
def test_hidepid_of_the_proc_mount(opts, want) -> None:
    text = DOCKER.format(opts=opts)
    assert hidepid(text) == want
    assert (hidepid(text) in HIDING) is (want != "0")
    assert hidepid(text, "/proc/bus") == want and hidepid(text, "/proc/keys") == "0"  # submounts are their own


def test_the_last_mount_at_a_point_is_the_one_seen() -> None:
    stacked = DOCKER.format(opts="") + "200 154 0:90 / /proc rw - proc proc rw,hidepid=2\n"
    assert hidepid(stacked) == "2"
    assert hidepid(stacked.replace(" /proc ", " /elsewhere ")) is None
    assert hidepid("garbage\n\n1 2 3\n") is None


def _status(inh=0, prm=0, eff=0, bnd=0, amb=0, drop=()) -> bytes:
    rows = {"CapInh": inh, "CapPrm": prm, "CapEff": eff, "CapBnd": bnd, "CapAmb": amb}
    return ("Name:\tpython3\n" + "".join(f"{k}:\t{v:016x}\n" for k, v in rows.items() if k not in drop)).encode()


def test_holding_names_every_set_with_the_capability() -> None:
    six = 0b11101011
    assert holding(_status(prm=six, eff=six, bnd=six), (CAP_SYS_ADMIN, CAP_SETPCAP)) == []
    admin = six | 1 << CAP_SYS_ADMIN
    assert holding(_status(prm=six, eff=six, bnd=admin), (CAP_SYS_ADMIN,)) == ["CapBnd"]
    assert holding(_status(inh=1 << CAP_SETPCAP, amb=1 << CAP_SETPCAP), (CAP_SYS_ADMIN, CAP_SETPCAP)) == ["CapInh", "CapAmb"]
    # brute force: each set alone holding one of the two is named, and only it
    keys = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
    for i, key in enumerate(keys):
        for cap in (CAP_SYS_ADMIN, CAP_SETPCAP):
            values = [six] * 5
            values[i] |= 1 << cap
            assert holding(_status(*values), (CAP_SYS_ADMIN, CAP_SETPCAP)) == [key]


def test_a_missing_set_counts_as_held_but_the_ambient_one_of_old_kernels() -> None:
    assert holding(_status(drop=("CapBnd",)), (CAP_SYS_ADMIN,)) == ["CapBnd"]
    assert holding(_status(drop=("CapAmb",)), (CAP_SYS_ADMIN,)) == []
