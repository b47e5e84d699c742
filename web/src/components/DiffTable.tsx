import type { ReactNode } from "react";
import type { DiffOperationJson } from "../gen/flagforge/admin/v1/diff_pb";

const text = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

// DiffTable is the one JSON diff renderer (audit entries, change requests): each
// changed field by JSON Pointer with its old and new value, in words as well as colour.
// line, when given, renders a last "Discussion" cell per line (change requests'
// comments on diff lines).
export function DiffTable({ ops, caption, line }: { ops: DiffOperationJson[]; caption: string; line?: (op: DiffOperationJson) => ReactNode }) {
  if (!ops.length) return <p className="text-sm">No field changed.</p>;
  return (
    <table className="w-full text-sm">
      <caption className="sr-only">{caption}</caption>
      <thead>
        <tr className="text-left">
          <th scope="col">Change</th>
          <th scope="col">Field</th>
          <th scope="col">Before</th>
          <th scope="col">After</th>
          {line && <th scope="col">Discussion</th>}
        </tr>
      </thead>
      <tbody className="font-mono">
        {ops.map((d, i) => (
          <tr key={i} className="border-t border-slate-200 align-top dark:border-slate-800">
            <td className="pr-2">{d.op}</td>
            <td className="pr-2">{d.path || "(whole)"}</td>
            <td className="bg-red-50 pr-2 text-red-900 dark:bg-red-950 dark:text-red-100">{d.op === "add" ? "(absent)" : `− ${text(d.before)}`}</td>
            <td className="bg-green-50 text-green-900 dark:bg-green-950 dark:text-green-100">{d.op === "remove" ? "(removed: default)" : `+ ${text(d.after)}`}</td>
            {line && <td className="pl-2 font-sans">{line(d)}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
