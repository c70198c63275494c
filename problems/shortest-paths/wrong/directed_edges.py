import heapq
import sys

# Treats every road as one-way (u -> v only).
data = sys.stdin.read().split()
n, m = int(data[0]), int(data[1])
adj = [[] for _ in range(n + 1)]
for e in range(m):
    u, v, w = int(data[2 + 3 * e]), int(data[3 + 3 * e]), int(data[4 + 3 * e])
    adj[u].append((v, w))
dist = [-1] * (n + 1)
heap = [(0, 1)]
while heap:
    d, u = heapq.heappop(heap)
    if dist[u] != -1:
        continue
    dist[u] = d
    for v, w in adj[u]:
        if dist[v] == -1:
            heapq.heappush(heap, (d + w, v))
print(*dist[1:])
