"""A WSGI app configured by an ini file whose path is in LEDGER_CONFIG (as many apps are)."""

import configparser
import os


def config() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    with open(os.environ["LEDGER_CONFIG"], encoding="utf-8") as f:
        parser.read_file(f)
    return parser["ledger"]


def application(environ, start_response):
    cfg = config()
    entries = sorted(os.listdir(cfg["entries"]))
    body = (f"{cfg['greeting']} from ledger on port {cfg['port']}: {len(entries)} entries in {cfg['entries']}, "
            f"a {len(cfg['secret_key'])}-character secret key\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
