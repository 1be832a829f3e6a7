"""A WSGI app whose every answer goes through numpy (OpenBLAS) and pandas."""

import numpy as np
import pandas as pd


def summary() -> str:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"sensor": np.repeat(["a", "b", "c"], 100), "value": rng.normal(10, 2, 300)})
    means = frame.groupby("sensor")["value"].mean().round(1)
    product = float(np.linalg.det(np.eye(3) * 2))  # a BLAS/LAPACK call
    return f"det={product:.1f} " + " ".join(f"{k}={v}" for k, v in means.items())


def application(environ, start_response):
    body = (summary() + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
