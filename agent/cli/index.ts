// The command table, in the order `agent --help` lists it.
import type { Command } from "./command.ts";
import { run } from "./run.ts";
import { once } from "./once.ts";
import { status } from "./status.ts";
import { plan } from "./plan.ts";
import { validate } from "./validate.ts";
import { schema } from "./schema.ts";
import { sync } from "./sync.ts";
import { pause } from "./pause.ts";
import { resume } from "./resume.ts";
import { rollback } from "./rollback.ts";
import { logs } from "./logs.ts";
import { history } from "./history.ts";
import { version } from "./version.ts";
import { verify } from "./verify.ts";
import { front } from "./front.ts";

export const COMMANDS: Command[] = [run, once, status, plan, validate, schema, sync, pause, resume, rollback, logs, history, verify, front, version];
