from collections import deque

# BFS: finds the fewest edges, not the smallest total weight.
n, m = map(int, input().split())
adj = [[] for _ in range(n + 1)]
for _ in range(m):
    u, v, w = map(int, input().split())
    adj[u].append((v, w))
    adj[v].append((u, w))
dist = [-1] * (n + 1)
dist[1] = 0
q = deque([1])
while q:
    u = q.popleft()
    for v, w in adj[u]:
        if dist[v] == -1:
            dist[v] = dist[u] + w
            q.append(v)
print(*dist[1:])
