"""Code that runs inside the sandbox (the container, or the local sandbox's subprocesses).

Stdlib only, Python >= 3.9. It is never imported from the installed package there: the host sends these
modules' source text (`sdpo_ttt.sandbox.protocol.bundle`) and `boot.py` installs them as the package `box`.

    boot       entry point: `python3 -I -S -c <boot.py> [--serve]`; loads the bundle, runs runner.main
    runner     the trusted runner: requests in, nonce-tagged events out; cleans up after every attempt
    pertest    kinds stdio and function: each test in a fresh attempt process, its replies validated
    script     kind script: one attempt process, the test program in the tester, one record per assert site
    proc       one attempt process: its output within caps, its limits watched, everything of it ended
    zygote     the runner's handle on the fork server (start a test process; kill an attempt uid as that uid)
    forkserver the fork server (started before any request is read: its memory never holds a test)
    privdrop   the one privilege-drop function every attempt-side process goes through
    prochide   Docker only, first thing: /proc remounted to hide other uids' processes, CAP_SYS_ADMIN dropped
    harness    what runs in the attempt's process: loads the program, runs it or answers calls
    tester     kind "script": runs the test program in a trusted process, the function under test a proxy
    wire       framing and the value encoding spoken across the attempt boundary, with strict validation
    compare    output comparison (never raises, never uses the attempt's objects)
    cleanup    after every attempt: processes (kill(-1) as the attempt uid), files (never through a link),
               SysV / POSIX IPC objects, memory and task counts
    osio       whole-file reads, whole-buffer writes and /proc status fields with os-level calls
"""
