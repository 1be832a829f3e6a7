"""The fail-safe server benchmark (`appdeb bench failsafe`, docs/failsafe.md).

Not "how fast is a trivial app" but "which server keeps serving when the app misbehaves": one
scenario app (bench/failsafe/app) whose paths wedge, crash, leak and move bodies slowly is served by
several Python servers on one throw-away node, and a client of its own sends a fixed-rate mix of
good and bad requests at each. Modules: `client` (the HTTP/1.1 client and its records),
`scenarios` (request mixes and their schedules), `servers` (starting and stopping each server in
the node), `memory` (RSS of a server's processes), `report` (aggregation, JSON, Markdown, plot),
`harness` (the whole run: node, package, servers × scenarios, clean-up).
"""
