"""The classroom load test: many simulated students on one real ``streamlit run app.py``.

It lives outside ``lab`` on purpose: it speaks Streamlit's websocket protocol (it imports
Streamlit's protobuf messages), and the ``lab`` library knows nothing of the UI.
Run it with ``python -m loadtest --sessions 30 --json OUT``.
"""
