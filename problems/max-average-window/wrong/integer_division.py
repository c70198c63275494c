n, k = map(int, input().split())
a = list(map(int, input().split()))
window = sum(a[:k])
best = window
for i in range(k, n):
    window += a[i] - a[i - k]
    best = max(best, window)
print(best // k)  # integer division drops the fraction (and floors negatives)
