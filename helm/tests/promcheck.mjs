// Checks what the chart renders for Prometheus and Grafana, offline:
//   - PrometheusRule / PodMonitor / ServiceMonitor objects against the prometheus-operator CRD
//     schemas (@kubernetes-models/prometheus-operator);
//   - PromQL expressions with Prometheus's own grammar (@prometheus-io/lezer-promql): a parse
//     with no error node. Grafana variables are replaced by values of the same syntax first.
// Input on stdin: {"objects": [...], "exprs": ["..."]}. Output on stdout:
//   {"objects": [{"kind", "name", "error"|null}], "exprs": [{"expr", "errors": [offset...]}]}
// Run with HOOKSEAL_NODE_MODULES=<repo>/.tools/node/node_modules (the modules are loaded by
// path, since this script lives outside that tree).
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const load = (rel) => import(pathToFileURL(path.join(process.env.HOOKSEAL_NODE_MODULES, rel)).href);
const { parser } = await load("@prometheus-io/lezer-promql/dist/index.es.js");
const v1 = await load("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js");
const models = { PrometheusRule: v1.PrometheusRule, PodMonitor: v1.PodMonitor, ServiceMonitor: v1.ServiceMonitor };

const input = JSON.parse(readFileSync(0, "utf8"));
const grafana = (e) =>
  e.replaceAll("$__rate_interval", "5m").replaceAll("$__interval", "1m").replaceAll("$__range", "1h");

const objects = (input.objects || []).map((o) => {
  const Model = models[o.kind];
  if (!Model) return { kind: o.kind, name: o.metadata?.name, error: `no schema for kind ${o.kind}` };
  try {
    new Model(o).validate();
    return { kind: o.kind, name: o.metadata?.name, error: null };
  } catch (e) {
    return { kind: o.kind, name: o.metadata?.name, error: String(e.message || e) };
  }
});

const exprs = (input.exprs || []).map((expr) => {
  const errors = [];
  parser.parse(grafana(expr)).iterate({
    enter(n) {
      if (n.type.isError) errors.push(n.from);
    },
  });
  return { expr, errors };
});

process.stdout.write(JSON.stringify({ objects, exprs }));
