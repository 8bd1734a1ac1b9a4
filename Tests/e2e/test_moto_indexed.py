"""scripts/moto-indexed.py (the benchmark's moto) answers GetMetricData exactly as moto's own
implementation does: randomised datapoints (single values, value lists, statistic sets; zero to three
dimensions given in any order; units) and randomised queries (periods, statistics, units, dimensions that
match, partly match or match nothing; both scan orders), every answer compared value for value."""
import datetime
import importlib.util
import os
import random

import boto3
from moto import mock_aws

from conftest import ROOT


def load_indexed():
    spec = importlib.util.spec_from_file_location("moto_indexed", os.path.join(ROOT, "scripts", "moto-indexed.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_indexed_get_metric_data_equals_motos_own():
    indexed = load_indexed()
    models = indexed.models
    rng = random.Random(21)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    names = ["CPUUtilization", "NetworkIn", "DatabaseConnections"]
    namespaces = ["AWS/EC2", "AWS/RDS", "Custom/App"]
    dimension_pool = [("InstanceId", f"i-{n:04x}") for n in range(6)] + [("Role", "web"), ("Role", "db"), ("AZ", "us-east-1a")]
    units = [None, "Percent", "Count", "Bytes"]

    def dimensions():
        return [{"Name": n, "Value": v} for n, v in rng.sample(dimension_pool, rng.choice([0, 1, 1, 1, 2, 3]))]

    original = models.CloudWatchBackend.get_metric_data
    try:
        with mock_aws():
            cw = boto3.client("cloudwatch", region_name="us-east-1")
            series = []
            for _ in range(40):
                ns, name, dims, unit = rng.choice(namespaces), rng.choice(names), dimensions(), rng.choice(units)
                series.append((ns, name, dims))
                data = []
                for _ in range(rng.randint(5, 40)):
                    datum = {"MetricName": name, "Dimensions": rng.sample(dims, len(dims)),
                             "Timestamp": now - datetime.timedelta(seconds=rng.randint(0, 12 * 86400))}
                    if unit:
                        datum["Unit"] = unit
                    kind = rng.random()
                    if kind < 0.6:
                        datum["Value"] = round(rng.uniform(0, 100), 3)
                    elif kind < 0.8:
                        datum["Values"], datum["Counts"] = [rng.uniform(0, 9), rng.uniform(0, 9)], [1.0, float(rng.randint(1, 3))]
                    else:
                        low, high = sorted((rng.uniform(0, 50), rng.uniform(50, 100)))
                        datum["StatisticValues"] = {"SampleCount": float(rng.randint(1, 60)), "Sum": rng.uniform(0, 5000), "Minimum": low,
                                                    "Maximum": high}
                    data.append(datum)
                cw.put_metric_data(Namespace=ns, MetricData=data)
            compared = matched = 0
            for call in range(12):
                queries = []
                for i in range(rng.randint(1, 30)):
                    ns, name, dims = rng.choice(series)
                    if rng.random() < 0.2:
                        dims = dimensions()  # usually matches nothing
                    elif rng.random() < 0.3:
                        ns = rng.choice(namespaces)  # moto ignores the namespace when dimensions are given
                    stat = {"Metric": {"Namespace": ns, "MetricName": name, "Dimensions": rng.sample(dims, len(dims))},
                            "Period": rng.choice([3600, 6 * 3600, 86400, 3 * 86400]),
                            "Stat": rng.choice(["Average", "Sum", "Minimum", "Maximum", "SampleCount"])}
                    if rng.random() < 0.25:
                        stat["Unit"] = rng.choice(units[1:])
                    queries.append({"Id": f"q{i}", "MetricStat": stat, "ReturnData": rng.random() < 0.9})
                end = now - datetime.timedelta(seconds=rng.randint(0, 3 * 86400))
                start = end - datetime.timedelta(seconds=rng.randint(3600, 10 * 86400))
                scan = rng.choice(["TimestampAscending", "TimestampDescending"])
                answers = []
                for implementation in (indexed.upstream_get_metric_data, indexed.indexed_get_metric_data):
                    models.CloudWatchBackend.get_metric_data = implementation
                    answers.append(cw.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy=scan)["MetricDataResults"])
                assert answers[0] == answers[1], f"call {call}: {queries}"
                compared += len(answers[0])
                matched += sum(1 for r in answers[0] if r["Values"])
            assert compared > 100 and matched > 50, (compared, matched)
    finally:
        models.CloudWatchBackend.get_metric_data = original
