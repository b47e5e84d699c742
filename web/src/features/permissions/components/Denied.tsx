import type { Can } from "../api/permissions";

// Denied shows, next to a disabled control, why the caller's role may not use
// it (the control points at it with aria-describedby). Nothing when allowed.
export function Denied({ can, id }: { can: Can; id: string }) {
  if (can.allowed) return null;
  return (
    <p id={id} className="basis-full text-sm text-amber-900 dark:text-amber-200" data-testid="denied-reason">
      <span aria-hidden="true">🔒 </span>
      {can.reason}
    </p>
  );
}

// deniedProps are the attributes of a control the caller may not use: disabled,
// described by the reason (also its tooltip).
export function deniedProps(can: Can, id: string) {
  return can.allowed ? {} : { disabled: true, "aria-describedby": id, title: can.reason };
}
