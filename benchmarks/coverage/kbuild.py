"""Where a kernel object of the coverage specs ends up in the guest kernel: vmlinux or a .ko.

Used by run.py (the built-in / module column of docs/coverage.md) and check_specs.py. Sources of
truth, in order: the compile units of the shipped debug vmlinux (sie writes their list to
~/.cache/sie/kernel-<release>/vmlinux-cu-sources.txt), then kbuild's Makefile of the object's
directory with the guest's .config (obj-$(CONFIG_X) += name.o, name-y / name-objs for composite
modules) and the .ko files Debian ships under /lib/modules/<release>/kernel/.
"""

import os
import re

RELEASE_FILE = "build-config/kernel-release"


def release(repo):
    with open(os.path.join(repo, RELEASE_FILE)) as f:
        return f.read().strip()


class Kbuild:
    def __init__(self, release, tree):
        self.release = release
        self.tree = tree  # a kernel source tree (Makefiles, sources)
        home = os.path.expanduser("~")
        cache = os.environ.get("SIE_CACHE", os.path.join(home, ".cache", "sie"))
        self.cu_file = os.path.join(cache, f"kernel-{release}", "vmlinux-cu-sources.txt")
        self.cus = None
        if os.path.exists(self.cu_file):
            with open(self.cu_file) as f:
                self.cus = {l.strip() for l in f if l.strip()}
        self.config = {}
        cfg = f"/usr/src/linux-headers-{release}/.config"
        if os.path.exists(cfg):
            with open(cfg) as f:
                for l in f:
                    m = re.match(r"(CONFIG_\w+)=(.*)", l)
                    if m:
                        self.config[m.group(1)] = m.group(2).strip('"')
        self.kos = {}
        moddir = f"/lib/modules/{release}/kernel"
        for root, _, files in os.walk(moddir):
            for fn in files:
                m = re.match(r"(.+)\.ko(\.xz|\.zst|\.gz)?$", fn)
                if m:
                    self.kos[m.group(1).replace("-", "_")] = os.path.join(root, fn)
        self._makefiles = {}

    def _assignments(self, d):
        """(lhs, rhs words) of every assignment in d/Makefile (or Kbuild), continuations joined."""
        if d in self._makefiles:
            return self._makefiles[d]
        out = []
        for name in ("Kbuild", "Makefile"):
            p = os.path.join(self.tree, d, name)
            if not os.path.exists(p):
                continue
            with open(p, errors="replace") as f:
                text = f.read().replace("\\\n", " ")
            for l in text.splitlines():
                l = l.split("#", 1)[0]
                m = re.match(r"\s*([\w.\-]+)-(y|m|objs|\$\((CONFIG_\w+)\)|\$\(subst m,y,\$\((CONFIG_\w+)\)\))"
                             r"\s*(?::=|\+=|=)\s*(.*)", l)
                if m:
                    cfg = m.group(3) or m.group(4)
                    out.append((m.group(1), m.group(2), cfg, m.group(5).split()))
            break
        self._makefiles[d] = out
        return out

    def _cfg_value(self, flag, cfg):
        if flag in ("y", "objs"):
            return "y"
        if flag == "m":
            return "m"
        return self.config.get(cfg, "n") if cfg else "n"

    def classify(self, obj):
        """{'kind': builtin|module|not-built|unknown, 'module': name, 'ko': path, 'config': X,
        'composite': bool} for an object path relative to the kernel tree."""
        src = obj[:-2] + ".c"
        if self.cus is not None and src in self.cus:
            return {"kind": "builtin", "module": None, "ko": None, "config": None,
                    "composite": False}
        d, base = os.path.split(obj)
        res = {"kind": "unknown", "module": None, "ko": None, "config": None, "composite": False}
        assigns = self._assignments(d)
        owner, owner_flag, owner_cfg = None, None, None
        for lhs, flag, cfg, words in assigns:
            if base in words:
                owner, owner_flag, owner_cfg = lhs, flag, cfg
                if lhs == "obj":
                    break
        if owner is None:
            return res
        if owner == "obj":
            name, val = base[:-2], self._cfg_value(owner_flag, owner_cfg)
            res["config"] = owner_cfg
        else:
            name, val, res["composite"] = owner, None, True
            for lhs, flag, cfg, words in assigns:
                if lhs == "obj" and f"{name}.o" in words:
                    val = self._cfg_value(flag, cfg)
                    res["config"] = cfg
                    break
            if val is None:
                return res
        res["module"] = name
        if val == "y":
            res["kind"] = "builtin"
        elif val == "m":
            ko = self.kos.get(name.replace("-", "_"))
            res["ko"] = ko
            res["kind"] = "module" if ko else "not-built"
        else:
            res["kind"] = "not-built"
        return res

    def classify_tunable(self, objects):
        """builtin / module / mixed / ... over a tunable's objects, plus the per-object details."""
        details = {o: self.classify(o) for o in objects}
        kinds = {v["kind"] for v in details.values()}
        if len(kinds) == 1:
            kind = kinds.pop()
        elif kinds <= {"builtin", "module"}:
            kind = "mixed"
        else:
            kind = "/".join(sorted(kinds))
        return kind, details
