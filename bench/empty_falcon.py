"""A ceiling for bench_ingest: the receiver's own stack (gunicorn + Falcon) with an empty handler."""

import falcon


class Empty:
    def on_post(self, req, resp):
        req.bounded_stream.read()
        resp.media = {"ok": True}


app = falcon.App()
app.add_route("/webhooks/shopify", Empty())
