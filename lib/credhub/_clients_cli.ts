/** `sigil credhub client add|list|remove`: the token endpoint's clients. @module */
import type { Command } from "../common/mod.ts";
import { listFlag, requireFlag, UsageError } from "../common/mod.ts";
import { addClient, listClients, removeClient } from "./_clients.ts";

const FILE_FLAG = {
  type: "string",
  arg: "FILE",
  description: "The clients file (created 0600 if missing)",
} as const;

function oneName(positionals: string[], verb: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(
      `Give exactly one client name: 'sigil credhub client ${verb} NAME'`,
    );
  }
  return positionals[0]!;
}

const add: Command = {
  name: "credhub client add",
  summary: "Add a CredHub client and print its secret (shown only once)",
  positionals: "NAME",
  flags: {
    "clients-file": FILE_FLAG,
    scope: {
      type: "string",
      multiple: true,
      arg: "SCOPE",
      description: "A scope such as credhub.write or credhub.read (repeatable)",
    },
  },
  async run(flags, positionals) {
    const name = oneName(positionals, "add");
    const file = requireFlag(flags, "clients-file");
    const scopes = listFlag(flags, "scope");
    const secret = await addClient(file, name, scopes);
    console.log(`client: ${name}`);
    console.log(`scopes: ${scopes.join(" ")}`);
    console.log(`secret: ${secret}`);
    console.error(
      "The secret is shown only this once; log in with 'credhub login --client-name " +
        `${name} --client-secret <secret>'`,
    );
    return 0;
  },
};

const list: Command = {
  name: "credhub client list",
  summary: "List CredHub clients and their scopes",
  flags: { "clients-file": FILE_FLAG },
  async run(flags) {
    const file = requireFlag(flags, "clients-file");
    for (const c of await listClients(file)) {
      console.log(`${c.name}\t${c.scopes.join(" ")}\t${c.createdAt}`);
    }
    return 0;
  },
};

const remove: Command = {
  name: "credhub client remove",
  summary: "Remove a CredHub client (its tokens expire on their own)",
  positionals: "NAME",
  flags: { "clients-file": FILE_FLAG },
  async run(flags, positionals) {
    const name = oneName(positionals, "remove");
    const file = requireFlag(flags, "clients-file");
    if (!(await removeClient(file, name))) {
      console.error(
        `Cannot remove client "${name}": no such client in "${file}"`,
      );
      return 1;
    }
    console.log(`removed: ${name}`);
    return 0;
  },
};

/** The client-management subcommands. */
export const CREDHUB_CLIENT_COMMANDS: Command[] = [add, list, remove];
