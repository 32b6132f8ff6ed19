/** Sigil's version, shown by `sigil version` and `sigil_build_info`. */
export const VERSION = "0.1.0";
