# nl2cmd widget for zsh.  Install:  eval "$(nl2cmd init zsh)"   (e.g. at the end of ~/.zshrc)
#
# Type a request in plain English, press the key (Ctrl-G by default): the command line is
# replaced by the suggested shell command.  Nothing is ever executed: review it, press Enter.
# A second key (Alt-E by default) explains the command on the line, part by part.
# The nl2cmd executable can be overridden at run time with NL2CMD_BIN.
if [[ -o interactive ]] && (( ! ${+__NL2CMD_LOADED} )); then
  typeset -g __NL2CMD_LOADED=1

  # @NL2CMD_ASK@

  # The nl2cmd executable in __nl2cmd_bin (the caller's local); status 1, with a message shown, when
  # the line is empty ($1 says what to type first) or nl2cmd is not on PATH.
  function __nl2cmd_ready() {
    if [[ -z ${BUFFER//[[:space:]]/} ]]; then
      \builtin zle -M "$1"
      \builtin return 1
    fi
    __nl2cmd_bin=${NL2CMD_BIN:-@NL2CMD_EXE@}
    if ! \builtin whence -p -- "$__nl2cmd_bin" >/dev/null 2>&1; then
      \builtin zle -M "nl2cmd: '$__nl2cmd_bin' not found on PATH (is nl2cmd installed?)"
      \builtin return 1
    fi
  }

  function __nl2cmd_widget() {
    # zle restores $? after a widget, so the user's last exit status survives.  Return 0 throughout:
    # a non-zero widget status makes zle beep.
    # Sane options inside the function whatever the user's setopts are (sh_word_split, ksh_arrays...).
    \builtin emulate -L zsh
    \builtin setopt extended_glob
    # (Plain strings, compared as text: nothing read back is ever evaluated, not even arithmetically.)
    \builtin local __nl2cmd_bin __nl2cmd_out __nl2cmd_err __nl2cmd_pre

    __nl2cmd_ready "nl2cmd: type a request first (e.g. 'find big files'), then press the key" || \builtin return 0

    \builtin zle -R "nl2cmd: thinking..."
    if ! __nl2cmd_ask "$__nl2cmd_bin" "$BUFFER"; then
      \builtin zle -M "$__nl2cmd_err"
      \builtin return 0
    fi

    BUFFER=$__nl2cmd_out
    # Cursor on the first {{placeholder}} so the user can fill it in; with none, the prefix is the
    # whole line and the cursor goes to the end.
    __nl2cmd_pre=${__nl2cmd_out%%'{{'*}
    CURSOR=${#__nl2cmd_pre}
    # Danger warnings (or other notes) go below the line; the command is only placed, never run.
    if [[ -n $__nl2cmd_err ]]; then
      \builtin zle -M "$__nl2cmd_err"
    fi
    \builtin zle -R
    \builtin return 0
  }

  # Explain the command line (Alt-E by default) below it; the line is left as it is.
  function __nl2cmd_explain_widget() {
    \builtin emulate -L zsh
    \builtin local __nl2cmd_bin __nl2cmd_out
    __nl2cmd_ready "nl2cmd: type a command first, then press the key to explain it" || \builtin return 0
    # The line is one argv element (never eval'ed); stdin is /dev/null.
    __nl2cmd_out=$(\command "$__nl2cmd_bin" explain --width "${COLUMNS:-80}" -- "$BUFFER" </dev/null 2>&1)
    \builtin zle -M -- "$__nl2cmd_out"
    \builtin return 0
  }

  \builtin zle -N __nl2cmd_widget
  \builtin zle -N __nl2cmd_explain_widget
  # @NL2CMD_BINDINGS@
fi
