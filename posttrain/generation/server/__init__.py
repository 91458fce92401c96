"""`posttrain serve`: an OpenAI-compatible server for a local model. schema.py validates every
request field against OpenAI's ranges, errors.py turns every failure into an OpenAI error
object, batcher.py gathers concurrent requests into one generate call, app.py holds the routes,
responses.py and stream.py shape the answers (whole or as server-sent events), command.py
starts it."""
