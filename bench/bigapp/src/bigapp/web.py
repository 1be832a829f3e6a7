"""A WSGI entry point that answers with a small pandas summary."""


def application(environ, start_response):
    import pandas

    frame = pandas.DataFrame({"n": range(10)})
    body = f"sum={int(frame['n'].sum())}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
