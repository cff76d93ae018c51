"""Protection of the public form and API from bots: rate limits shared across
workers and servers (``ratelimit``, ``counting``, ``identity``), a honeypot and
a signed minimum fill time (``traps``), and optional challenges (``challenges``).
``service.install(app, settings)`` puts it on an application. Settings in
``settings`` (imported by ``scheduler_app.settings``: this file imports nothing).
"""
