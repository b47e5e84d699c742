import { useState } from "react";
import { btn, card, input } from "../../../components/ui";
import type { ClauseJson, RuleJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { operators } from "./format";
import { ServeEditor } from "./ServeEditor";
import { ruleSummary, valueText } from "./summary";

// ListInput edits a list of strings as comma or newline separated text, keeping
// what the user types and reporting the deduplicated list.
export function ListInput({ label, values, onChange, invalid, multiline }: {
  label: string; values: string[]; onChange: (v: string[]) => void; invalid?: boolean; multiline?: boolean;
}) {
  const [text, setText] = useState(values.join(multiline ? "\n" : ", "));
  const parse = (t: string) => [...new Set(t.split(/[,\n]/).map((s) => s.trim()).filter(Boolean))];
  const props = {
    "aria-label": label,
    "aria-invalid": invalid || undefined,
    className: `${input} ${multiline ? "h-20 w-full font-mono" : "w-56"}`,
    value: text,
    onChange: (e: { target: { value: string } }) => {
      setText(e.target.value);
      onChange(parse(e.target.value));
    },
  };
  if (!multiline) return <input {...props} />;
  return (
    <label className="flex flex-col gap-1">
      <span className="text-sm font-medium">{label}</span>
      <textarea {...props} aria-label={undefined} />
    </label>
  );
}

function castValues(op: ClauseJson["operator"], vs: string[]) {
  return operators.find((o) => o.op === op)?.numeric ? vs.map((v) => (v !== "" && !Number.isNaN(Number(v)) ? Number(v) : v)) : vs;
}

// RuleBuilder edits the ordered rules: "If <attribute> <operator> <values> and …
// → serve <variant or rollout>", each with its one-line summary.
export function RuleBuilder({ rules, variants, onChange, errField }: {
  rules: RuleJson[]; variants: string[]; onChange: (r: RuleJson[]) => void; errField: string;
}) {
  const set = (i: number, r: RuleJson) => onChange(rules.map((x, j) => (j === i ? r : x)));
  const move = (i: number, d: number) => {
    const next = [...rules];
    const [r] = next.splice(i, 1);
    next.splice(i + d, 0, r);
    onChange(next);
  };
  const newId = () => {
    let n = rules.length + 1;
    while (rules.some((r) => r.id === `rule-${n}`)) n++;
    return `rule-${n}`;
  };
  return (
    <div className="flex flex-col gap-3">
      {rules.map((r, i) => {
        const path = `config.rules[${i}]`;
        const invalid = (p: string) => (errField.startsWith(p) ? true : undefined);
        const clauses = r.clauses ?? [];
        const setClause = (k: number, c: ClauseJson) => set(i, { ...r, clauses: clauses.map((x, j) => (j === k ? c : x)) });
        const n = i + 1;
        return (
          <article key={r.id ?? i} className={card} aria-labelledby={`rule-${i}-title`}>
            <div className="mb-2 flex flex-wrap items-center gap-2">
              <h4 id={`rule-${i}-title`} className="font-semibold">
                Rule {n} <span className="font-mono text-xs">({r.id})</span>
              </h4>
              <p className="text-sm italic" data-testid={`rule-${n}-summary`}>
                {ruleSummary(r)}
              </p>
              <span className="ml-auto flex gap-1">
                <button type="button" className={btn} disabled={i === 0} onClick={() => move(i, -1)} aria-label={`Move rule ${n} up`}>
                  ↑
                </button>
                <button type="button" className={btn} disabled={i === rules.length - 1} onClick={() => move(i, 1)} aria-label={`Move rule ${n} down`}>
                  ↓
                </button>
                <button type="button" className={btn} onClick={() => onChange(rules.filter((_, j) => j !== i))}>
                  Delete rule {n}
                </button>
              </span>
            </div>
            <ul className="flex flex-col gap-2">
              {clauses.map((c, k) => {
                const cp = `${path}.clauses[${k}]`;
                const op = operators.find((o) => o.op === c.operator);
                const prefix = `Rule ${n} condition ${k + 1}`;
                return (
                  <li key={k} className="flex flex-wrap items-center gap-2">
                    <span className="w-8 text-sm">{k === 0 ? "If" : "and"}</span>
                    <input
                      aria-label={`${prefix} attribute`}
                      className={`${input} w-40`}
                      value={c.attribute ?? ""}
                      placeholder="country"
                      aria-invalid={invalid(`${cp}.attribute`)}
                      onChange={(e) => setClause(k, { ...c, attribute: e.target.value })}
                    />
                    <label className="flex items-center gap-1 text-sm">
                      <input type="checkbox" checked={!!c.negate} onChange={(e) => setClause(k, { ...c, negate: e.target.checked })} />
                      <span>
                        not<span className="sr-only"> ({prefix})</span>
                      </span>
                    </label>
                    <select
                      aria-label={`${prefix} operator`}
                      className={input}
                      value={String(c.operator ?? "OPERATOR_IN")}
                      aria-invalid={invalid(`${cp}.operator`)}
                      onChange={(e) =>
                        setClause(k, { ...c, operator: e.target.value as ClauseJson["operator"], values: castValues(e.target.value as ClauseJson["operator"], (c.values ?? []).map(valueText)) })
                      }
                    >
                      {operators.map((o) => (
                        <option key={o.op} value={o.op}>
                          {o.phrase}
                        </option>
                      ))}
                    </select>
                    {!op?.noValues && (
                      <ListInput
                        label={`${prefix} values`}
                        values={(c.values ?? []).map(valueText)}
                        invalid={invalid(`${cp}.values`)}
                        onChange={(vs) => setClause(k, { ...c, values: castValues(c.operator, vs) })}
                      />
                    )}
                    <label className="flex items-center gap-1 text-sm">
                      <input type="checkbox" checked={!!c.caseInsensitive} onChange={(e) => setClause(k, { ...c, caseInsensitive: e.target.checked })} />
                      <span>
                        ignore case<span className="sr-only"> ({prefix})</span>
                      </span>
                    </label>
                    <button type="button" className={btn} onClick={() => set(i, { ...r, clauses: clauses.filter((_, j) => j !== k) })}>
                      Remove condition<span className="sr-only"> {k + 1} of rule {n}</span>
                    </button>
                  </li>
                );
              })}
            </ul>
            <button
              type="button"
              className={`${btn} mt-2`}
              onClick={() => set(i, { ...r, clauses: [...clauses, { attribute: "", operator: "OPERATOR_IN", values: [] }] })}
            >
              Add condition<span className="sr-only"> to rule {n}</span>
            </button>
            <div className="mt-3">
              <ServeEditor
                name={`Rule ${n} serves`}
                serve={r.serve}
                variants={variants}
                path={`${path}.serve`}
                errField={errField}
                onChange={(s) => set(i, { ...r, serve: s })}
              />
            </div>
          </article>
        );
      })}
      <button
        type="button"
        className={`${btn} self-start`}
        onClick={() => onChange([...rules, { id: newId(), clauses: [{ attribute: "", operator: "OPERATOR_IN", values: [] }], serve: { variant: variants[0] } }])}
      >
        Add rule
      </button>
    </div>
  );
}
