"""The console's HTML: a frame for every page; the page's script fills it in. No inline
script or style (the Content-Security-Policy forbids them): words travel as JSON data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape

from gateway.console.catalogue import words


def _words_json(language: str) -> str:
    return json.dumps(dict(words(language)), ensure_ascii=False).replace("</", "<\\/")


def login_page(language: str, login_csrf: str, error: str | None = None) -> str:
    w = words(language)
    problem = f'<p class="problem" id="login-error">{escape(w[error])}</p>' if error else ""
    return f"""<!doctype html>
<html lang="{escape(language)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(w["login.title"])}</title>
<link rel="stylesheet" href="/static/console.css"></head>
<body class="login"><main>
<h1>{escape(w["login.title"])}</h1>{problem}
<form method="post" action="/login" id="login-form">
<input type="hidden" name="csrf" value="{escape(login_csrf)}">
<label>{escape(w["login.name"])}<input name="name" id="name" autocomplete="username"
 required maxlength="32"></label>
<label>{escape(w["login.password"])}<input name="password" id="password" type="password"
 autocomplete="current-password" required maxlength="256"></label>
<button type="submit" id="login">{escape(w["login.submit"])}</button>
</form></main></body></html>"""


def app_page(page: str, language: str, session: Mapping[str, str]) -> str:
    w = words(language)
    data = " ".join(f'data-{k}="{escape(v)}"' for k, v in session.items())
    nav = "".join(
        f'<a href="{href}" class="{"here" if name == page else ""}" id="nav-{name}">'
        f'{escape(w["nav." + name])}</a>'
        for name, href in (("board", "/"), ("devices", "/devices"), ("shift", "/shift")))
    return f"""<!doctype html>
<html lang="{escape(language)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(w["title"])}</title>
<link rel="stylesheet" href="/static/console.css"></head>
<body data-page="{escape(page)}" data-lang="{escape(language)}" {data}>
<header><h1>{escape(w["title"])}</h1><nav>{nav}</nav>
<span id="clock"></span>
<button id="sound" class="unarmed" type="button"></button>
<button id="language" type="button">{escape(w["language"])}</button>
<span id="who"></span>
<button id="logout" type="button">{escape(w["logout"])}</button></header>
<div id="stream" class="banner broken" hidden></div>
<div id="broker" class="banner broken" hidden></div>
<div id="upstreams" class="banner broken" hidden></div>
<div id="sound-needed" class="banner alarm" hidden></div>
<main id="main"></main>
<script type="application/json" id="words">{_words_json(language)}</script>
<script src="/static/console.js"></script>
</body></html>"""


def city_page(language: str, user: str | None = None, csrf: str = "") -> str:
    """The board in multi-compound mode (the city hub's): no accounts, no navigation to a
    compound's own pages; a compound filter. The script reads `data-mode`; `user` (named
    by the city's proxy) may acknowledge the alerts of the compounds granted to the board."""
    w = words(language)
    other = "en" if language == "zh-CN" else "zh-CN"
    who = escape(w["city.readonly"]) if user is None else (
        f"{escape(user)} · {escape(w['city.granted'])}")
    acting = "" if user is None else f' data-user="{escape(user)}" data-csrf="{escape(csrf)}"'
    return f"""<!doctype html>
<html lang="{escape(language)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(w["city.title"])}</title>
<link rel="stylesheet" href="/static/console.css"></head>
<body data-page="board" data-mode="city" data-lang="{escape(language)}"{acting}>
<header><h1>{escape(w["city.title"])}</h1>
<label id="compound-choice">{escape(w["city.compound"])}
<select id="compound-filter"><option value="">{escape(w["city.all"])}</option></select></label>
<span id="clock"></span>
<button id="sound" class="unarmed" type="button"></button>
<a id="language" href="?lang={escape(other)}">{escape(w["language"])}</a>
<span id="who">{who}</span></header>
<div id="stream" class="banner broken" hidden></div>
<div id="syncing" class="banner broken" hidden></div>
<div id="sound-needed" class="banner alarm" hidden></div>
<main id="main"></main>
<script type="application/json" id="words">{_words_json(language)}</script>
<script src="/static/console.js"></script>
</body></html>"""
