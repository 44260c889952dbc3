"""`roomctl completion bash|zsh|fish`: a shell completion script generated from the parser itself,
so every command, flag and fixed choice the CLI has is completed (and nothing it does not have)."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                            parents=[common],
                            description="bash: source <(roomctl completion bash); "
                                        "zsh: source <(roomctl completion zsh); "
                                        "fish: roomctl completion fish | source")
    parser.add_argument("shell", choices=("bash", "zsh", "fish"))
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    choices: tuple[str, ...]
    takes_value: bool


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # ("sandbox", "serve")
    help: str
    options: tuple[Option, ...]
    subcommands: tuple[str, ...]
    positional_choices: tuple[str, ...]


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Command]:
    """Every command reachable from `parser`, depth first (the root is path ())."""
    options = tuple(
        Option(tuple(a.option_strings), a.help or "", tuple(str(c) for c in a.choices or ()), a.nargs != 0)
        for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS
    )
    positional = tuple(str(c) for a in parser._actions
                       if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
                       for c in (a.choices or ()))
    sub = _subparsers(parser)
    helps = {c.dest: c.help or "" for c in sub._choices_actions} if sub else {}
    names = tuple(sub.choices) if sub else ()
    found = [Command(path, "", options, names, positional)]
    if sub:
        for name, child in sub.choices.items():
            child_commands = commands(child, (*path, name))
            child_commands[0] = Command((*path, name), helps.get(name, ""), *_rest(child_commands[0]))
            found.extend(child_commands)
    return found


def _rest(command: Command) -> tuple[tuple[Option, ...], tuple[str, ...], tuple[str, ...]]:
    return command.options, command.subcommands, command.positional_choices


def bash_script(parser: argparse.ArgumentParser) -> str:
    cases = []
    for command in commands(parser):
        key = " ".join(command.path)
        words = [f for o in command.options for f in o.flags] + list(command.subcommands)
        words += list(command.positional_choices)
        value_cases = "".join(
            f"            {'|'.join(o.flags)}) COMPREPLY=($(compgen -W {shlex.quote(' '.join(o.choices))} "
            f'-- "$cur")); return;;\n'
            for o in command.options if o.choices)
        takes = "|".join(f for o in command.options if o.takes_value and not o.choices for f in o.flags)
        file_case = f'            {takes}) COMPREPLY=($(compgen -f -- "$cur")); return;;\n' if takes else ""
        cases.append(
            f"        {shlex.quote(key)})\n"
            f'            case "$prev" in\n{value_cases}{file_case}            esac\n'
            f"            words={shlex.quote(' '.join(words))}\n"
            f"            subs={shlex.quote(' '.join(command.subcommands + command.positional_choices))};;\n")
    return f"""# roomctl bash completion: source <(roomctl completion bash)
_roomctl() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local path="" words="" subs="" i w
    # The command path: the leading words that name (sub)commands.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        [[ "$w" == -* ]] && continue
        case "${{path:+$path }}$w" in
{"".join(f"            {shlex.quote(' '.join(c.path))}) path={shlex.quote(' '.join(c.path))};;{chr(10)}"
         for c in commands(parser) if c.path)}        esac
    done
    case "$path" in
{"".join(cases)}    esac
    if [[ "$cur" == -* || -n "$subs" ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -o bashdefault -F _roomctl roomctl
"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    # zsh runs the bash function through bashcompinit (part of zsh since 4.2): one generator, two shells.
    return ("#compdef roomctl\n# roomctl zsh completion: source <(roomctl completion zsh)\n"
            "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n"
            + bash_script(parser).split("\n", 1)[1])


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_script(parser: argparse.ArgumentParser) -> str:
    lines = ["# roomctl fish completion: roomctl completion fish | source", "complete -c roomctl -f"]
    every = {name for c in commands(parser) for name in c.subcommands}
    for command in commands(parser):
        if command.path:
            seen = " && ".join(f"__fish_seen_subcommand_from {shlex.quote(p)}" for p in command.path)
            condition = seen
        else:
            condition = f"not __fish_seen_subcommand_from {' '.join(sorted(every))}"
        if command.subcommands:
            children = commands(parser)
            for child in children:
                if child.path[:-1] == command.path and child.path:
                    lines.append(f"complete -c roomctl -n {_fish_quote(condition)} -a {shlex.quote(child.path[-1])} "
                                 f"-d {_fish_quote(child.help)}")
        if command.positional_choices:
            lines.append(f"complete -c roomctl -n {_fish_quote(condition)} "
                         f"-a {_fish_quote(' '.join(command.positional_choices))}")
        elif command.path and not command.subcommands:
            lines.append(f"complete -c roomctl -n {_fish_quote(condition)} -F")  # manifest files
        for option in command.options:
            flags = []
            for flag in option.flags:
                flags.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
            value = ""
            if option.choices:
                value = f" -x -a {_fish_quote(' '.join(option.choices))}"
            elif option.takes_value:
                value = " -r -F"
            lines.append(f"complete -c roomctl -n {_fish_quote(condition)} {' '.join(flags)}{value} "
                         f"-d {_fish_quote(option.help)}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from .main import build_parser

    parser = build_parser()
    script = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[args.shell](parser)
    print(script, end="")
    return 0
