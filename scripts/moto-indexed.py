#!/usr/bin/env python3
"""moto's server with CloudWatch GetMetricData answered from an index: the same answers as moto's own
implementation, in time proportional to the datapoints a query matches.

moto 5.x answers each MetricStat query by scanning every datapoint in the request's window once per
period, then comparing sorted dimension lists of every datapoint of the period: O(queries x periods x
datapoints). A 500-query call over 14 daily periods of an account with ~800 monitored resources takes
~50 s of pure Python there, which buries the scanner's own time in the emulator's. This wrapper groups
the window's datapoints by (metric name, dimension multiset) -- a necessary condition of moto's
predicate -- puts each candidate in its period and applies moto's exact predicate, unit filter and
statistics to each period's candidates in moto's order. Queries with metric math
or Metrics Insights expressions go to moto's implementation unchanged.
Tests/e2e/test_moto_indexed.py checks both give identical results on randomised data.

Usage: moto-indexed.py -H HOST -p PORT (the arguments of moto_server)."""
import sys
from datetime import timedelta

from moto.cloudwatch import models

upstream_get_metric_data = models.CloudWatchBackend.get_metric_data


def dimension_key(dimensions):
    """The multiset of (name, value) pairs, or None when a value is missing (moto's Dimension then equals
    any value: such datapoints are candidates of every query)."""
    if any(d.name is None or d.value is None for d in dimensions):
        return None
    return tuple(sorted((d.name, d.value) for d in dimensions))


def indexed_get_metric_data(self, queries, start_time, end_time, scan_by="TimestampAscending"):
    if any("MetricStat" not in q or int(q["MetricStat"]["Period"]) <= 0 for q in queries):
        return upstream_get_metric_data(self, queries, start_time, end_time, scan_by)
    start_time = start_time.replace(microsecond=0)
    end_time = end_time.replace(microsecond=0)
    if start_time >= end_time:  # moto's own validation errors
        return upstream_get_metric_data(self, queries, start_time, end_time, scan_by)
    # The window's datapoints with their position in moto's order, grouped two ways: by name and dimension
    # multiset (queries with dimensions), by namespace and name (queries without).
    by_dimensions, by_namespace, wild = {}, {}, []
    for position, md in enumerate(self.get_all_metrics()):
        if start_time <= md.timestamp < end_time:
            entry = (md.timestamp, position, md)
            key = dimension_key(md.dimensions)
            (wild if key is None else by_dimensions.setdefault((md.name, key), [])).append(entry)
            by_namespace.setdefault((md.namespace, md.name), []).append(entry)
    results = []
    for query in queries:
        metric_stat = query["MetricStat"]
        query_ns = metric_stat["Metric"]["Namespace"]
        query_name = metric_stat["Metric"]["MetricName"]
        delta = timedelta(seconds=int(metric_stat["Period"]))
        dimensions = [models.Dimension(name=d["Name"], value=d["Value"]) for d in metric_stat["Metric"].get("Dimensions", [])]
        unit = metric_stat.get("Unit")
        stat = metric_stat["Stat"]
        if dimensions:
            # A query's dimensions always have names and values (moto's request parsing requires both).
            candidates = by_dimensions.get((query_name, dimension_key(dimensions)), []) + wild
            wanted = sorted(dimensions)
            match = lambda md: sorted(md.dimensions) == wanted and md.name == query_name
        else:
            candidates = by_namespace.get((query_ns, query_name), [])
            match = lambda md: md.namespace == query_ns and md.name == query_name
        # moto walks the periods start, start + delta, ... and keeps those with matching datapoints: each
        # candidate belongs to period (timestamp - start) // delta.
        periods = {}
        for e in candidates:
            periods.setdefault((e[0] - start_time) // delta, []).append(e)
        values, timestamps = [], []
        for k in sorted(periods):
            period_md = [e[2] for e in sorted(periods[k], key=lambda e: e[1]) if match(e[2])]
            if unit:
                period_md = [md for md in period_md if md.unit == unit]
            if period_md:
                stats = models.Statistics([stat], start_time + k * delta)
                stats.metric_data = period_md
                values.append(stats.get_statistics_for_type(stat))
                timestamps.append(stats.timestamp)
        if scan_by == "TimestampDescending" and timestamps:
            timestamps.reverse()
            values.reverse()
        if query.get("ReturnData", True):
            results.append({"id": query["Id"], "label": query.get("Label") or f"{query_name} {stat}", "values": values,
                            "timestamps": timestamps, "status_code": "Complete"})
    return results


models.CloudWatchBackend.get_metric_data = indexed_get_metric_data

if __name__ == "__main__":
    from moto.server import main
    main(sys.argv[1:])
