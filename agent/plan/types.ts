// Actions a tick may take, as plain data. `kind` is "<resource>.<verb>"; `ref` names the resource
// as status does; `description` is what `agent plan` prints.

export interface ActionBase {
  kind: string;
  ref: string;
  description: string;
}

export interface Blocked {
  reason: string;       // PascalCase
  message: string;      // a sentence that says what to do
}
