"""The in-cluster agent: lists and watches every kind of one Kubernetes cluster with
client-go reflector semantics and streams deltas to the cluster's Kafka topic.

Pure parts (testable without a broker): ``strip``, ``kinds``, ``ledger``, ``records``,
``buffer``, ``emitter``. I/O: ``apiclient``/``discovery`` (Kubernetes API via
kubernetes-asyncio's transport), ``sink``/``restore`` (Kafka), ``reflector``/``agent``
(the loops). ``docs/producer.md`` explains the choices.
"""
