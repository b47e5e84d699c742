import { useRef, useState, type KeyboardEvent } from "react";
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

// Problem is one server-side validation problem, by the field it names.
export type Problem = { field?: string; description?: string };

// RuleBuilder edits the ordered rules: "If <attribute> <operator> <values> and …
// → serve <variant or rollout>", each with its one-line summary. Rules reorder by
// dragging their handle, with Alt+↑/↓ anywhere in a rule, or with the ↑/↓
// buttons; a rule can be disabled (kept, skipped by evaluation). problems are the
// server's validation of the draft while typing: each marks the input it names.
export function RuleBuilder({ rules, variants, onChange, errField, problems = [] }: {
  rules: RuleJson[]; variants: string[]; onChange: (r: RuleJson[]) => void; errField: string; problems?: Problem[];
}) {
  const set = (i: number, r: RuleJson) => onChange(rules.map((x, j) => (j === i ? r : x)));
  const handles = useRef<(HTMLButtonElement | null)[]>([]);
  const [dragging, setDragging] = useState<number | null>(null);
  const [moved, setMoved] = useState("");
  const moveTo = (from: number, to: number) => {
    if (to < 0 || to >= rules.length || from === to) return;
    const next = [...rules];
    const [r] = next.splice(from, 1);
    next.splice(to, 0, r);
    onChange(next);
    setMoved(`Rule ${from + 1} moved to position ${to + 1}.`);
    // Keep the keyboard on the rule that moved.
    requestAnimationFrame(() => handles.current[to]?.focus());
  };
  const move = (i: number, d: number) => moveTo(i, i + d);
  const onKey = (i: number) => (e: KeyboardEvent) => {
    if (!e.altKey || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) return;
    e.preventDefault();
    move(i, e.key === "ArrowUp" ? -1 : 1);
  };
  const problemsAt = (p: string) => problems.filter((x) => (x.field ?? "").startsWith(p));
  const newId = () => {
    let n = rules.length + 1;
    while (rules.some((r) => r.id === `rule-${n}`)) n++;
    return `rule-${n}`;
  };
  return (
    <div className="flex flex-col gap-3">
      {rules.map((r, i) => {
        const path = `config.rules[${i}]`;
        const invalid = (p: string) => (errField.startsWith(p) || problemsAt(p).length > 0 ? true : undefined);
        const clauses = r.clauses ?? [];
        const setClause = (k: number, c: ClauseJson) => set(i, { ...r, clauses: clauses.map((x, j) => (j === k ? c : x)) });
        const n = i + 1;
        return (
          <article
            key={r.id ?? i}
            className={`${card} ${r.disabled ? "border-dashed opacity-80" : ""} ${dragging !== null && dragging !== i ? "outline-dashed outline-1 outline-slate-400" : ""}`}
            aria-labelledby={`rule-${i}-title`}
            data-testid={`rule-${n}`}
            onKeyDown={onKey(i)}
            onDragOver={(e) => {
              if (dragging !== null) e.preventDefault();
            }}
            onDrop={(e) => {
              e.preventDefault();
              if (dragging !== null) moveTo(dragging, i);
              setDragging(null);
            }}
          >
            <div className="mb-2 flex flex-wrap items-center gap-2">
              <button
                type="button"
                ref={(el) => {
                  handles.current[i] = el;
                }}
                draggable
                onDragStart={(e) => {
                  e.dataTransfer.effectAllowed = "move";
                  e.dataTransfer.setData("text/plain", String(i));
                  setDragging(i);
                }}
                onDragEnd={() => setDragging(null)}
                className={`${btn} cursor-grab`}
                aria-label={`Reorder rule ${n}: drag, or Alt+Arrow up/down`}
                aria-keyshortcuts="Alt+ArrowUp Alt+ArrowDown"
              >
                ⠿
              </button>
              <h4 id={`rule-${i}-title`} className="font-semibold">
                Rule {n} <span className="font-mono text-xs">({r.id})</span>
                {r.disabled && <span className="ml-2 rounded bg-slate-200 px-1 text-xs text-slate-900">disabled</span>}
              </h4>
              <p className="text-sm italic" data-testid={`rule-${n}-summary`}>
                {ruleSummary(r)}
              </p>
              <span className="ml-auto flex flex-wrap items-center gap-1">
                <label className="mr-2 flex items-center gap-1 text-sm">
                  <input
                    type="checkbox"
                    role="switch"
                    checked={!r.disabled}
                    onChange={(e) => set(i, { ...r, disabled: !e.target.checked })}
                  />
                  <span>
                    Enabled<span className="sr-only"> (rule {n})</span>
                  </span>
                </label>
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
                    {problemsAt(cp).map((x, m) => (
                      <p key={m} id={`${cp}-problem-${m}`} className="w-full text-sm text-red-800 dark:text-red-300">
                        {prefix}: {x.description}
                      </p>
                    ))}
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
      <p className="sr-only" role="status">
        {moved}
      </p>
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
