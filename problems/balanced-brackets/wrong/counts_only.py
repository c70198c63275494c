# Only checks that each bracket type has as many openers as closers.
t = int(input())
for _ in range(t):
    s = input().strip()
    ok = all(s.count(a) == s.count(b) for a, b in ("()", "[]", "{}"))
    print("YES" if ok else "NO")
