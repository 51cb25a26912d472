# nl2cmd widget for bash (>= 4).  Install:  eval "$(nl2cmd init bash)"   (e.g. at the end of ~/.bashrc)
#
# Type a request in plain English, press the key (Ctrl-G by default): the command line is
# replaced by the suggested shell command.  Nothing is ever executed: review it, press Enter.
# A second key (Alt-E by default) explains the command on the line, part by part.
# The nl2cmd executable can be overridden at run time with NL2CMD_BIN.
if [[ $- == *i* ]] && [[ -z ${__NL2CMD_LOADED-} ]]; then
__NL2CMD_LOADED=1

# bash >= 5.2 clears the prompt line before running a `bind -x` command and redraws it afterwards,
# so output lands on the prompt's line and the prompt comes back below it.  Older versions leave the
# line on screen: start below it there.
if (( BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 2) )); then
  __NL2CMD_CLEARS=1
else
  __NL2CMD_CLEARS=0
fi

# Print a message above the prompt (stderr is the terminal readline draws on).
__nl2cmd_msg() {
  if (( __NL2CMD_CLEARS )); then
    \builtin printf '%s\n' "$1" >&2
  else
    \builtin printf '\n%s\n' "$1" >&2
  fi
}

# The nl2cmd executable in __nl2cmd_bin (the caller's local); status 1, with a message shown, when the
# line is empty ($1 says what to type first) or nl2cmd is not on PATH.
__nl2cmd_ready() {
  if [[ -z ${READLINE_LINE//[[:space:]]/} ]]; then
    __nl2cmd_msg "$1"
    \builtin return 1
  fi
  __nl2cmd_bin=${NL2CMD_BIN:-@NL2CMD_EXE@}
  if ! \builtin type -P -- "$__nl2cmd_bin" >/dev/null 2>&1; then
    __nl2cmd_msg "nl2cmd: '$__nl2cmd_bin' not found on PATH (is nl2cmd installed?)"
    \builtin return 1
  fi
}

# @NL2CMD_ASK@

__nl2cmd_widget() {
  # Capture $? first and return it at the end: the exit status of a `bind -x` command becomes $?.
  \builtin local __nl2cmd_rc=$?
  \builtin local __nl2cmd_bin __nl2cmd_out __nl2cmd_err __nl2cmd_pre __nl2cmd_tty=0 __nl2cmd_failed=0

  __nl2cmd_ready "nl2cmd: type a request first (e.g. 'find big files'), then press the key" || \builtin return "$__nl2cmd_rc"

  # "thinking" indicator on the (already cleared) prompt line, where bash clears it.
  if (( __NL2CMD_CLEARS )) && [[ -t 2 ]]; then
    __nl2cmd_tty=1
    \builtin printf '\rnl2cmd: thinking...' >&2
  fi
  __nl2cmd_ask "$__nl2cmd_bin" "$READLINE_LINE" || __nl2cmd_failed=1
  if (( __nl2cmd_tty )); then
    \builtin printf '\r\033[K' >&2
  fi
  if (( __nl2cmd_failed )); then
    __nl2cmd_msg "$__nl2cmd_err"
    \builtin return "$__nl2cmd_rc"
  fi
  # Danger warnings (or other notes) are shown; the command is only placed, never run.
  if [[ -n $__nl2cmd_err ]]; then
    __nl2cmd_msg "$__nl2cmd_err"
  fi

  READLINE_LINE=$__nl2cmd_out
  # Cursor on the first {{placeholder}} so the user can fill it in; with none, the prefix is the
  # whole line and the cursor goes to the end.
  __nl2cmd_pre=${__nl2cmd_out%%\{\{*}
  if (( BASH_VERSINFO[0] >= 5 )); then
    READLINE_POINT=${#__nl2cmd_pre}
  else
    __nl2cmd_point_bytes "$__nl2cmd_pre"
  fi
  \builtin return "$__nl2cmd_rc"
}

# Explain the command line (Alt-E by default): the explanation is printed above the prompt and the
# line is left as it is.  The line is one argv element (never eval'ed); stdin is /dev/null.
__nl2cmd_explain_widget() {
  \builtin local __nl2cmd_rc=$?
  \builtin local __nl2cmd_bin __nl2cmd_out
  __nl2cmd_ready "nl2cmd: type a command first, then press the key to explain it" || \builtin return "$__nl2cmd_rc"
  __nl2cmd_out=$(\command "$__nl2cmd_bin" explain --width "${COLUMNS:-80}" -- "$READLINE_LINE" </dev/null 2>&1)
  __nl2cmd_msg "$__nl2cmd_out"
  \builtin return "$__nl2cmd_rc"
}

# bash 4 counts READLINE_POINT in bytes (bash >= 5 in characters): measure $1 in the C locale,
# in a separate function so that LC_ALL stays local to it.
__nl2cmd_point_bytes() {
  \builtin local LC_ALL=C
  READLINE_POINT=${#1}
}

if (( BASH_VERSINFO[0] < 4 )); then
  \builtin printf '%s\n' "nl2cmd: the bash widget needs bash >= 4 (this is $BASH_VERSION); widget not installed" >&2
else
  : # @NL2CMD_BINDINGS@
fi
fi
