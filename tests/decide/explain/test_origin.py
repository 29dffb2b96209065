"""Fixes for the right machine: this machine's facts tailor a fix only for a log from this machine
(decide.explain.origin); a log from elsewhere gets fixes for the machine it shows, and says so."""

from __future__ import annotations

import os

import pytest

from flashdoctor.decide.explain import explain_bytes, explain_output, explain_text
from flashdoctor.decide.explain.origin import LogMachine, decide_origin, env_prefix
from flashdoctor.model.environment import Environment
from tests.decide.explain.foreign import count, tune_cases, tuning_cases
from tests.support.targets import bundled_finder, target_env

TORCH_SYMBOL = (
    "ImportError: /home/u/venv/lib/python3.10/site-packages/flash_attn_2_cuda.cpython-310-x86_64-linux-gnu.so: "
    "undefined symbol: _ZN3c104cuda9SetDeviceEi"
)
KILLED = "[3/73] nvcc -c a.cu\nKilled\nninja: build stopped: subcommand failed."
TARGETS = [
    "h100", "h200", "b200", "a100", "rtx4090", "rtx5090", "t4", "v100", "rocm-mi300", "cpu-box",
    "no-torch", "jetson-orin", "old-driver", "nvcc-mismatch", "torch26-cu124", "h100-cpu-torch", "jetson-thor",
]  # fmt: skip


# -- the measure: logs from public threads, explained with a machine at hand ----------------------------
# Four machines of different kinds in the unit tier; every target in the full suite (~1 s each).
UNIT_TARGETS = ("h100", "cpu-box", "no-torch", "rocm-mi300")


@pytest.mark.parametrize(
    "name", [n if n in UNIT_TARGETS else pytest.param(n, marks=pytest.mark.slow) for n in TARGETS]
)
def test_no_fix_names_the_target_for_a_log_from_elsewhere(name: str) -> None:
    # Before: 68 diagnoses of the 98 tune logs named the h100 target's torch, Python, GPU, wheel...
    found = count(tune_cases(), target_env(name), bundled_finder())
    assert found == [], found[:3]


# Logs that agree with a target on everything they show (read one by one): the target's facts apply.
# (axolotl#3142's title "torch 2.6.0/cu124" and nothing else agreed with the v100 and torch26-cu124 targets
# until one torch alone stopped naming a machine.)
AGREEING = {
    # "PyTorch: 2.9.1+cu130", "CUDA version: 13.0", "Python 3.12" and nothing else: the jetson-thor target has
    # torch 2.9.1 for CUDA 13.0 on Python 3.12
    "jetson-thor": {"fa-2118-libcudart12-cu130"},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", TARGETS)
def test_no_fix_names_the_target_for_a_log_of_any_tuning_split(name: str) -> None:
    # Every tuning split (681 logs at stop 28; tests never read the holdout splits).
    found = count(tuning_cases(), target_env(name), bundled_finder())
    assert {f.case for f in found} <= AGREEING.get(name, set()), found[:3]


@pytest.mark.system
def test_no_fix_names_this_probed_machine_for_a_log_from_elsewhere() -> None:
    from flashdoctor.probe import probe_environment

    env = probe_environment(python=None, environ=os.environ, import_tests=False)
    found = count(tune_cases(), env, bundled_finder())
    assert found == [], found[:3]


# -- when the machine is used -----------------------------------------------------------------------
def test_a_log_that_shows_nothing_of_its_machine_is_not_tailored_unless_here() -> None:
    env = target_env("h100")
    expl = explain_bytes(KILLED.encode(), env)
    assert not expl.origin.use_machine and expl.origin.reason.startswith("unknown")
    assert "MAX_JOBS=<free GB / 9" in expl.diagnoses[0].fix and expl.machine == ""
    here = explain_bytes(KILLED.encode(), env, here=True)
    assert here.origin.use_machine and here.origin.reason == "here" and here.machine == "this machine"
    assert "MAX_JOBS=8" in here.diagnoses[0].fix


def test_the_same_torch_and_python_in_the_log_mean_this_machine() -> None:
    log = "torch.__version__  = 2.11.0+cu130\nPython 3.12.3\n" + KILLED
    expl = explain_bytes(log.encode(), target_env("h100"))
    assert expl.origin.use_machine and "torch 2.11.0+cu130, CUDA 13.0 and Python 3.12" in expl.origin.reason
    assert "MAX_JOBS=8" in expl.diagnoses[0].fix


@pytest.mark.parametrize(
    ("extra", "agrees"),
    [
        ("GPU 0: NVIDIA H100 80GB HBM3 (sm_90)\n", "NVIDIA H100 80GB HBM3 (sm_90)"),
        ("Cuda compilation tools, release 13.0, V13.0.88\n", "nvcc 13.0"),
    ],
)
def test_the_same_torch_and_another_fact_mean_this_machine(extra: str, agrees: str) -> None:
    log = "torch.__version__  = 2.11.0+cu130\n" + extra + KILLED
    expl = explain_bytes(log.encode(), target_env("h100"))
    assert expl.origin.use_machine and agrees in expl.origin.reason, expl.origin.reason


def test_the_same_torch_alone_does_not_mean_this_machine() -> None:
    # A released torch is on many machines (axolotl#3142's "torch 2.6.0/cu124" title on the torch 2.6 target).
    log = "torch.__version__  = 2.11.0+cu130\n" + KILLED
    expl = explain_bytes(log.encode(), target_env("h100"))
    assert not expl.origin.use_machine and "--here" in expl.origin.reason, expl.origin.reason
    assert "MAX_JOBS=8" not in expl.diagnoses[0].fix
    assert explain_bytes(log.encode(), target_env("h100"), here=True).origin.use_machine


def test_a_released_torch_and_a_python_alone_do_not_mean_this_machine() -> None:
    # Both are on many machines: "torch 2.6.0" with no CUDA label and "Python 3.12" named the torch26-cu124
    # target for a held-out log until a second fact besides the torch was needed (stop 32).
    log = "torch 2.6.0\nPython 3.12\n" + KILLED
    expl = explain_bytes(log.encode(), target_env("torch26-cu124"))
    assert not expl.origin.use_machine, expl.origin.reason
    assert "torch 2.6.0 and Python 3.12 are in the log and here" in expl.origin.reason
    labelled = explain_bytes(log.replace("2.6.0", "2.6.0+cu124").encode(), target_env("torch26-cu124"))
    assert labelled.origin.use_machine and "CUDA 12.4 and Python 3.12" in labelled.origin.reason


def test_this_python_environment_in_the_log_means_this_machine() -> None:
    env = target_env("h100", python_executable="/home/ana/proj/.venv/bin/python")
    log = TORCH_SYMBOL.replace("/home/u/venv/lib/python3.10", "/home/ana/proj/.venv/lib/python3.12").replace(
        "cpython-310", "cpython-312"
    )
    expl = explain_bytes(log.encode(), env, wheel_finder=lambda e, v: None)
    assert expl.origin.use_machine and "/home/ana/proj/.venv" in expl.origin.reason
    assert expl.diagnoses[0].fix.startswith(
        "No prebuilt flash-attn wheel fits this machine (torch 2.11.0+cu130"
    )
    # Another Python in the log (3.10) outweighs nothing else: it is not this environment.
    assert not explain_bytes(TORCH_SYMBOL.encode(), env).origin.use_machine


def test_this_windows_python_environment_in_the_log_means_this_machine() -> None:
    env = target_env(
        "h100", platform="win_amd64", python_executable="C:\\Users\\ana\\venv\\Scripts\\python.exe"
    )
    log = '  File "C:\\Users\\ana\\venv\\Lib\\site-packages\\flash_attn\\__init__.py", line 3\n' + KILLED
    assert explain_bytes(log.encode(), env).origin.use_machine
    repr_log = (
        "OSError: [Errno 2] No such file or directory: 'C:\\\\Users\\\\ana\\\\venv\\\\Lib\\\\x'\n" + KILLED
    )
    assert explain_bytes(repr_log.encode(), env).origin.use_machine


# A conda environment and a python.org install on Windows keep python.exe in the environment's own folder
# (no Scripts\\): their logs never named this machine by path (env_prefix knew only Scripts\\ and bin/).
WINDOWS_CONDA = "C:\\Users\\ana\\miniconda3\\envs\\fa\\python.exe"
WINDOWS_PYTHON_ORG = "C:\\Users\\ana\\AppData\\Local\\Programs\\Python\\Python312\\python.exe"
WINDOWS_IMPORT = (
    "Traceback (most recent call last):\n"
    '  File "C:\\Users\\ana\\train.py", line 4, in <module>\n'
    "    from flash_attn import flash_attn_func\n"
    '  File "{site}\\flash_attn\\__init__.py", line 3, in <module>\n'
    "    from flash_attn.flash_attn_interface import (\n"
    '  File "{site}\\flash_attn\\flash_attn_interface.py", line 15, in <module>\n'
    "    import flash_attn_2_cuda as flash_attn_gpu\n"
    "ImportError: DLL load failed while importing flash_attn_2_cuda: The specified procedure could not be found.\n"
)


@pytest.mark.parametrize(
    ("exe", "site"),
    [
        (WINDOWS_CONDA, "C:\\Users\\ana\\miniconda3\\envs\\fa\\Lib\\site-packages"),
        (
            WINDOWS_PYTHON_ORG,
            "c:\\users\\ana\\appdata\\local\\programs\\python\\python312\\lib\\site-packages",
        ),
    ],
)
def test_a_windows_environment_with_python_exe_in_its_own_folder_is_found_in_its_log(
    exe: str, site: str
) -> None:
    env = target_env("h100", platform="win_amd64", python_executable=exe)
    expl = explain_bytes(WINDOWS_IMPORT.format(site=site).encode(), env)
    assert expl.origin.use_machine, expl.origin.reason
    assert exe.rsplit("\\", 1)[0].replace("\\", "/") in expl.origin.reason
    # Another conda environment of the same installation is not this one.
    other = site.replace("envs\\fa", "envs\\fa-old").replace("python312", "python311")
    assert not explain_bytes(WINDOWS_IMPORT.format(site=other).encode(), env).origin.use_machine


BASE_SITE = "/home/ana/miniconda3/lib/python3.12/site-packages"


@pytest.mark.parametrize(
    ("exe", "other"),
    [
        # A sub-environment of this base install: conda's ROOT/envs/NAME.
        ("/home/ana/miniconda3/bin/python", "/home/ana/miniconda3/envs/fa/lib/python3.12/site-packages"),
        # The package cache every environment of the installation links from (ROOT/pkgs).
        ("/home/ana/miniconda3/bin/python", "/home/ana/miniconda3/pkgs/flash-attn-2.8.3-py312/site-packages"),
        # pyenv-virtualenv keeps its environments under the version's envs/ too.
        ("/home/ana/.pyenv/versions/3.12.3/bin/python", "/home/ana/.pyenv/versions/3.12.3/envs/fa/lib/x"),
    ],
)
def test_an_environment_inside_this_ones_envs_folder_is_not_this_one(exe: str, other: str) -> None:
    # The base install /home/ana/miniconda3 "was in" every log of its sub-environments, and their fixes
    # were tailored with the base's torch, Python and wheel.
    env = target_env("h100", python_executable=exe)
    log = TORCH_SYMBOL.replace("/home/u/venv/lib/python3.10/site-packages", other).replace(
        "cpython-310", "cpython-312"
    )
    expl = explain_bytes(log.encode(), env, wheel_finder=lambda e, v: "never-used.whl")
    assert not expl.origin.use_machine, expl.origin.reason
    assert "never-used" not in expl.diagnoses[0].fix
    # The base's own site-packages is the base.
    own = log.replace(other, exe.rsplit("/", 2)[0] + "/lib/python3.12/site-packages")
    assert explain_bytes(own.encode(), env).origin.use_machine
    # And so is a log that shows both: the base's own path names it.
    assert explain_bytes((own + "\n" + log).encode(), env).origin.use_machine


def test_a_windows_conda_base_does_not_own_its_sub_environments_logs() -> None:
    base = "C:\\Users\\ana\\miniconda3\\python.exe"
    env = target_env("h100", platform="win_amd64", python_executable=base)
    sub = WINDOWS_IMPORT.format(site="C:\\Users\\ana\\miniconda3\\envs\\fa\\Lib\\site-packages")
    assert not explain_bytes(sub.encode(), env).origin.use_machine
    # A repr of the path doubles its backslashes.
    assert not explain_bytes(sub.replace("\\", "\\\\").encode(), env).origin.use_machine
    own = WINDOWS_IMPORT.format(site="C:\\Users\\ana\\miniconda3\\Lib\\site-packages")
    assert explain_bytes(own.encode(), env).origin.use_machine


def test_a_user_name_with_a_non_ascii_capital_is_found_in_the_log() -> None:
    # The environment's directory was lower-cased with Unicode rules ("özgür"), the log with ASCII ones
    # ("Özgür" stays): this machine's own log never matched.
    env = target_env(
        "h100", platform="win_amd64", python_executable="C:\\Users\\Özgür\\venv\\Scripts\\python.exe"
    )
    log = WINDOWS_IMPORT.format(site="C:\\Users\\Özgür\\venv\\Lib\\site-packages")
    expl = explain_bytes(log.encode(), env)
    assert expl.origin.use_machine and "C:/Users/Özgür/venv" in expl.origin.reason, expl.origin.reason
    linux = target_env("h100", python_executable="/home/Åsa/fa/bin/python")
    log = TORCH_SYMBOL.replace("/home/u/venv/lib/python3.10", "/home/Åsa/fa/lib/python3.12")
    assert explain_bytes(log.replace("cpython-310", "cpython-312").encode(), linux).origin.use_machine


@pytest.mark.parametrize("codec", ["utf-8", "cp1252", "cp437", "cp850"])
def test_a_windows_log_in_a_console_code_page_names_a_non_ascii_user_directory(codec: str) -> None:
    # A log redirected from cmd.exe or Windows PowerShell is in the console's code page (cp437, cp850) or
    # the ANSI one (cp1252): "José" is the byte 0x82 or 0xE9 there, and only the UTF-8 spelling was looked
    # for, so this machine's own log never named it.
    env = target_env(
        "h100", platform="win_amd64", python_executable="C:\\Users\\José\\venv\\Scripts\\python.exe"
    )
    site = "C:\\Users\\José\\venv\\Lib\\site-packages"
    expl = explain_bytes(WINDOWS_IMPORT.format(site=site).encode(codec), env)
    assert expl.origin.use_machine and "C:/Users/José/venv" in expl.origin.reason, expl.origin.reason
    # Another user's directory, in any of these code pages, is not this one.
    for other in ("Jose", "Josè", "Josée", "JoséA"):
        log = WINDOWS_IMPORT.format(site=site.replace("José", other)).encode(codec)
        assert not explain_bytes(log, env).origin.use_machine, (other, codec)


# A user directory of each code-page family (flashdoctor/data/code_pages.json), with two other users' of it.
FAMILY_NAMES = {
    "cp1250": ("Łukasz", ("Lukasz", "Łukaszek")),  # Central European (ANSI)
    "cp852": ("Łukasz", ("Lukasz", "Łukaszek")),  # Central European (OEM)
    "cp1251": ("Иван", ("Ivan", "Иванна")),  # Cyrillic (ANSI)
    "cp866": ("Иван", ("Ivan", "Иванна")),  # Cyrillic (OEM)
    "cp932": ("田中", ("山田", "田中太")),  # Japanese
    "cp936": ("张三", ("张四", "张三丰")),  # Simplified Chinese
    "cp949": ("민수", ("민호", "민수아")),  # Korean
    "cp950": ("陳大文", ("陳小文", "陳大文華")),  # Traditional Chinese
    "cp1254": ("Çağrı", ("Cagri", "Çağrıcan")),  # Turkish (ANSI)
    "cp857": ("Çağrı", ("Cagri", "Çağrıcan")),  # Turkish (OEM)
    "cp1253": ("Γιάννης", ("Γιάννη", "Γιάννηςκ")),  # Greek (ANSI)
    "cp737": ("Γιάννης", ("Γιάννη", "Γιάννηςκ")),  # Greek (OEM)
    "cp1257": ("Jānis", ("Janis", "Jānisa")),  # Baltic (ANSI)
    "cp775": ("Jānis", ("Janis", "Jānisa")),  # Baltic (OEM)
}


@pytest.mark.parametrize("codec", sorted(FAMILY_NAMES))
def test_a_windows_log_in_another_locales_code_page_names_its_user_directory(codec: str) -> None:
    # A Polish, Russian, Japanese, Chinese or Korean machine's console and editor save a log in its own
    # code page: only cp1252, cp437 and cp850 were tried, so this machine's own log never named C:\Users\Иван.
    name, others = FAMILY_NAMES[codec]
    env = target_env(
        "h100", platform="win_amd64", python_executable=f"C:\\Users\\{name}\\venv\\Scripts\\python.exe"
    )
    site = f"C:\\Users\\{name}\\venv\\Lib\\site-packages"
    expl = explain_bytes(WINDOWS_IMPORT.format(site=site).encode(codec), env)
    assert expl.origin.use_machine and f"C:/Users/{name}/venv" in expl.origin.reason, expl.origin.reason
    # Another user's directory, and an unrelated one, are not this one.
    for other in (*others, "ana"):
        log = WINDOWS_IMPORT.format(site=site.replace(name, other)).encode(codec)
        assert not explain_bytes(log, env).origin.use_machine, (other, codec)


# What a console or a tool shows when it decodes a program's output with another code page than the one it
# was written in (the machine's OEM one for its ANSI one, or either for UTF-8), saved then as UTF-8: the
# user directory is mojibake ("╨Ш╨▓╨░╨╜" for Иван). UTF-8 read as Big5 (cp950) is mostly not even
# decodable, so the Traditional Chinese family is tested in its own code page only (above).
MOJIBAKE = [
    ("Łukasz", "cp852", "cp1250"),
    ("Łukasz", "cp1250", "cp852"),
    ("Łukasz", "utf-8", "cp852"),
    ("Иван", "cp866", "cp1251"),
    ("Иван", "cp1251", "cp866"),
    ("Иван", "utf-8", "cp866"),
    ("José", "utf-8", "cp1252"),
    ("José", "cp850", "cp1252"),
    ("田中", "utf-8", "cp932"),
    ("张三", "utf-8", "cp936"),
    ("민수", "utf-8", "cp949"),
]


@pytest.mark.parametrize(("name", "written", "read"), MOJIBAKE)
def test_a_user_directory_decoded_with_another_code_page_is_still_found(
    name: str, written: str, read: str
) -> None:
    env = target_env(
        "h100", platform="win_amd64", python_executable=f"C:\\Users\\{name}\\venv\\Scripts\\python.exe"
    )
    site = f"C:\\Users\\{name}\\venv\\Lib\\site-packages"

    def shown(text: str) -> bytes:
        return text.encode(written).decode(read).encode("utf-8")

    log = shown(WINDOWS_IMPORT.format(site=site))
    assert name.encode(written).decode(read).encode() in log  # the name is mojibake in the log
    expl = explain_bytes(log, env)
    assert expl.origin.use_machine and f"C:/Users/{name}/venv" in expl.origin.reason, expl.origin.reason
    # Other users' directories shown the same way, and an unrelated one, are not this one.
    others = next((o for n, o in FAMILY_NAMES.values() if n == name), ("Jose", "Josée"))
    checked = []
    for other in (*others, "ana"):
        try:
            log = shown(WINDOWS_IMPORT.format(site=site.replace(name, other)))
        except UnicodeError:  # not decodable that way: no such log
            continue
        assert not explain_bytes(log, env).origin.use_machine, (other, written, read)
        checked.append(other)
    assert len(checked) >= 2, checked  # another user of the family, not only "ana"


def test_a_windows_path_lower_cased_by_normcase_still_names_its_directory() -> None:
    # os.path.normcase lower-cases with Unicode rules ("c:\\users\\özgür\\venv"); the log was lower-cased
    # with ASCII ones, so "Özgür" (0xC3 0x96) never met "özgür" (0xC3 0xB6).
    env = target_env(
        "h100", platform="win_amd64", python_executable="C:\\Users\\Özgür\\venv\\Scripts\\python.exe"
    )
    log = WINDOWS_IMPORT.format(site="c:\\users\\özgür\\venv\\lib\\site-packages")
    assert explain_bytes(log.encode(), env).origin.use_machine
    assert explain_bytes(log.encode("cp1252"), env).origin.use_machine
    # Linux paths are case-sensitive: /home/åsa is not /home/Åsa.
    linux = target_env("h100", python_executable="/home/Åsa/fa/bin/python")
    other = TORCH_SYMBOL.replace("/home/u/venv/lib/python3.10", "/home/åsa/fa/lib/python3.12")
    assert not explain_bytes(other.replace("cpython-310", "cpython-312").encode(), linux).origin.use_machine


def test_a_generic_interpreter_path_identifies_no_machine() -> None:
    assert env_prefix(Environment(python_executable="/usr/bin/python3")) is None
    assert env_prefix(Environment(python_executable="/opt/conda/bin/python")) is None
    assert env_prefix(Environment(python_executable="/home/me/venv/bin/python")) == "/home/me/venv"
    assert (
        env_prefix(Environment(python_executable="C:\\Users\\me\\venv\\Scripts\\python.exe"))
        == "C:/Users/me/venv"
    )
    assert env_prefix(Environment(python_executable=WINDOWS_CONDA)) == "C:/Users/ana/miniconda3/envs/fa"
    assert env_prefix(Environment(python_executable=WINDOWS_PYTHON_ORG)) == (
        "C:/Users/ana/AppData/Local/Programs/Python/Python312"
    )
    # An installation for all users is on many machines.
    assert env_prefix(Environment(python_executable="C:\\Python312\\python.exe")) is None
    assert env_prefix(Environment(python_executable="C:\\Program Files\\Python312\\python.exe")) is None
    assert env_prefix(Environment(python_executable="C:\\ProgramData\\miniconda3\\python.exe")) is None


def test_a_log_from_another_machine_gets_a_fix_for_that_machine_and_says_so() -> None:
    log = "torch.__version__  = 2.1.2+cu121\n" + TORCH_SYMBOL
    expl = explain_bytes(log.encode(), target_env("h100"), wheel_finder=lambda e, v: "never-used.whl")
    assert not expl.origin.use_machine
    assert "torch 2.1.2+cu121 in the log, 2.11.0+cu130 here" in expl.origin.reason
    assert expl.machine == "the machine in this log (torch 2.1.2+cu121, cp310, Linux)"
    fix = expl.diagnoses[0].fix
    assert fix.startswith("For the machine in this log (torch 2.1.2+cu121, cp310, Linux): ")
    assert "torch 2.1.2+cu121" in fix and "2.11" not in fix and "never-used" not in fix
    assert "this machine" not in fix


@pytest.mark.parametrize(
    ("log", "reason"),
    [
        (
            "C:\\Users\\me\\venv\\Lib\\site-packages\\flash_attn\\x.py\n" + KILLED,
            "windows in the log, linux here",
        ),
        ("Python 3.9.18\n" + KILLED, "Python 3.9 in the log, 3.12 here"),
        ("Cuda compilation tools, release 11.8, V11.8.89\n" + KILLED, "nvcc 11.8 in the log"),
        (
            "| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2 |\n" + KILLED,
            "driver 535",
        ),
        # The torch agrees, the GPU does not (dev20's ComfyUI log: torch 2.8.0+cu128 on an RTX 2080 Ti).
        (
            "torch.__version__  = 2.11.0+cu130\nDevice: cuda:0 NVIDIA GeForce RTX 2080 Ti : cudaMallocAsync\n"
            + KILLED,
            "a GPU older than Ampere in the log, NVIDIA H100 80GB HBM3 here",
        ),
        # pip downloaded a Windows wheel: it takes only its own platform's (stop 43)
        (
            "  Downloading flash_attn-2.7.4.post1-cp310-cp310-win_amd64.whl (150.2 MB)\n" + KILLED,
            "windows in the log, linux here",
        ),
        # Python's own build line on Windows, with no drive path
        (
            "Python version: 3.12.9 (tags/v3.12.9:fdb8142, Feb  4 2025) [MSC v.1942 64 bit (AMD64)]\n"
            + KILLED,
            "windows in the log, linux here",
        ),
    ],
)
def test_a_fact_that_disagrees_means_another_machine(log: str, reason: str) -> None:
    expl = explain_bytes(log.encode(), target_env("h100"))
    assert not expl.origin.use_machine and reason in expl.origin.reason, expl.origin.reason
    assert "MAX_JOBS=8" not in expl.diagnoses[0].fix


def test_an_old_gpu_in_a_log_agrees_with_a_machine_that_has_one() -> None:
    log = "torch.__version__  = 2.11.0+cu130\nDevice: cuda:0 Tesla V100-SXM2-32GB\n" + KILLED
    v100 = target_env("h100", gpus=[{"name": "Tesla V100-SXM2-32GB", "capability": "7.0"}])
    assert explain_bytes(log.encode(), v100).origin.use_machine
    assert not explain_bytes(log.encode(), target_env("h100")).origin.use_machine


def test_a_torch_downloaded_for_an_isolated_build_does_not_speak_for_the_machine() -> None:
    env = target_env("h100", python_executable="/home/ana/venv/bin/python")
    log = (
        "  Installing build dependencies ... done\n"
        "      torch.__version__  = 2.9.0+cu128\n"
        '  File "/home/ana/venv/lib/python3.12/site-packages/pip/_internal/x.py", line 1\n' + KILLED
    )
    expl = explain_bytes(log.encode(), env)
    assert expl.origin.use_machine, expl.origin.reason


def test_a_log_that_moves_torch_tells_where_it_moved_and_two_prints_tell_nothing() -> None:
    log = (
        "It worked after going from torch 2.8.0 to 2.7.0; then vllm came and torch is 2.6.0:\n" + TORCH_SYMBOL
    )
    assert explain_bytes(log.encode(), None).machine == "the machine in this log (torch 2.6.0, cp310, Linux)"
    two = "torch.__version__ = 2.6.0\n" + "torch.__version__ = 2.7.0\n" + TORCH_SYMBOL
    expl = explain_bytes(two.encode(), None)
    assert "torch" not in expl.machine and "2.6" not in expl.diagnoses[0].fix
    # "torch 2.8" in prose does not identify this machine (any torch 2.8 user writes it)
    prose = "Torch 2.8, CUDA 12.9\n" + KILLED
    assert not explain_bytes(prose.encode(), target_env("a100")).origin.use_machine


def test_two_machines_torch_in_long_lines_tell_nothing_either() -> None:
    # A log of two nodes, one with this machine's torch: the two values leave the torch unknown, also once
    # the long lines are read joined as a word wrap would have left them (the joined line's first value
    # alone named this machine's torch as the failing node's).
    log = (
        "node-a: Requirement already satisfied: torch in /venv/lib/python3.11/site-packages (2.13.0+cpu)\n"
        "node-b: Requirement already satisfied: torch in /opt/env/lib/python3.10/site-packages (2.1.2+cu121)\n"
        "node-b: " + TORCH_SYMBOL
    )
    expl = explain_bytes(log.encode(), target_env("cpu-box"))
    assert not expl.origin.use_machine and "torch" not in expl.machine
    assert "2.13.0" not in expl.diagnoses[0].fix and "2.1.2" not in expl.diagnoses[0].fix


def test_a_second_machine_near_the_end_of_a_long_log_is_seen() -> None:
    # Node a (this machine's torch and Python) logs hundreds of lines naming them; node b, another machine,
    # names its own only before it fails at the end. Facts were read from the first lines holding their
    # keyword only, so the log was judged node a's, this machine's.
    steps = [f"node-a: step {i}: loss 1.25, python 3.12.3, torch 2.11.0+cu130" for i in range(400)]
    log = "\n".join(
        [
            "node-a: torch.__version__  = 2.11.0+cu130",
            "node-a: Python 3.12.3",
            "node-a: GPU 0: NVIDIA H100 80GB HBM3 (sm_90)",
            *steps,
            "node-b: torch.__version__  = 2.1.2+cu121",
            "node-b: Python 3.10.12",
            KILLED,
        ]
    )
    expl = explain_bytes(log.encode(), target_env("h100"))
    assert not expl.origin.use_machine, expl.origin.reason
    assert "MAX_JOBS=8" not in expl.diagnoses[0].fix and "torch" not in expl.machine
    # The same log from one machine only is still this machine's.
    one = explain_bytes(
        log.replace("2.1.2+cu121", "2.11.0+cu130").replace("3.10.12", "3.12.3").encode(), target_env("h100")
    )
    assert one.origin.use_machine, one.origin.reason


def test_decide_origin_without_a_machine_or_with_here() -> None:
    shown = LogMachine(torch="2.1.2", python="3.10", os="linux")
    assert decide_origin(None, shown, b"", here=True).use_machine is False
    assert decide_origin(target_env("h100"), shown, b"", here=True).use_machine is True
    assert decide_origin(target_env("h100"), shown, b"", here=False).reason.startswith("differs")


# -- callers that ran the command on this machine ------------------------------------------------------
def test_output_captured_by_a_flashdoctor_command_is_from_this_machine() -> None:
    # explain_output serves the commands' own captured output; check's import diagnoser is covered by
    # test_engine.test_check_explains_a_failed_import_with_the_engine (its fix names this machine's wheel).
    env = target_env("cpu-box")
    assert "MAX_JOBS=1" in explain_output(KILLED, env)[0].fix
    assert "MAX_JOBS=1" in explain_text(KILLED, env, here=True)[0].fix
    assert "MAX_JOBS=1" not in explain_text(KILLED, env)[0].fix


def test_python_and_torch_cuda_written_as_settings_tell_the_log_apart() -> None:
    # ai-windows-whl#22: "PyTorch=2.11.0, Python=3.13" against a cp312 machine with torch 2.11.0.
    env = target_env("h100")
    log = (
        "The FlashAttention (FA=2.8.3, PyTorch=2.11.0, Python=3.13, CUDA=13.0) wheel does not work\n"
        "ImportError: DLL load failed while importing flash_attn_2_cuda: The specified procedure could not be found."
    )
    expl = explain_bytes(log.encode(), env, bundled_finder())
    assert not expl.origin.use_machine and "Python 3.13 in the log" in expl.origin.reason
    # deepseek-ocr#70: torch 2.6.0 from PyTorch's cu118 index is not this cu124 torch 2.6.0.
    log = (
        "libcudart.so.12: cannot open shared object file: No such file or directory\n"
        "pip install torch==2.6.0 --index-url https://download.pytorch.org/whl/cu118\n"
    )
    expl = explain_bytes(log.encode(), target_env("v100"), bundled_finder())
    assert (
        not expl.origin.use_machine and "torch for CUDA 11.8 in the log, CUDA 12.4 here" in expl.origin.reason
    )
    # pytorch#152790: "torch 2.6.0-cu126" is the cu126 build, not this cu124 one.
    log = "undefined symbol _ZN3c105ErrorC2ENS_14SourceLocationESs on torch 2.6.0-cu126; cu124 exports it\n"
    expl = explain_bytes(log.encode(), target_env("v100"), bundled_finder())
    assert not expl.origin.use_machine and "torch 2.6.0+cu126 in the log" in expl.origin.reason


# -- the log's GPU ------------------------------------------------------------------------------------
NO_CODE = (
    "the smoke test failed: FA2 on GPU 0 NVIDIA H100 80GB HBM3 (sm_90): the binary has no code for GPU 0 NVIDIA"
    " H100 80GB HBM3 (sm_90)"
)


@pytest.mark.parametrize(
    ("line", "name", "cc"),
    [
        (NO_CODE, "NVIDIA H100 80GB HBM3", "9.0"),  # flashdoctor's own smoke test
        (  # torch's warning for a GPU its build has no kernels for
            "UserWarning: NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current"
            " PyTorch installation.",
            "NVIDIA GeForce RTX 5090",
            "12.0",
        ),
        (  # torch's warning for a GPU older than its oldest arch
            "UserWarning: Found GPU0 Tesla V100-SXM2-16GB which is of cuda capability 7.0.",
            "Tesla V100-SXM2-16GB",
            "7.0",
        ),
        (
            "  Device 0: NVIDIA GeForce RTX 3090, compute capability 8.6, VMM: yes",
            "NVIDIA GeForce RTX 3090",
            "8.6",
        ),
    ],
)
def test_the_gpu_a_log_ran_on_is_read_from_it(line: str, name: str, cc: str) -> None:
    sm = cc.replace(".", "")
    assert (
        explain_bytes(f"{line}\n{KILLED}".encode(), None).machine
        == f"the machine in this log ({name} (sm_{sm}))"
    )


@pytest.mark.parametrize(
    "line",
    [
        "[12/73] nvcc -c csrc/flash_attn/src/flash_fwd_hdim128_bf16_sm80.cu -gencode arch=compute_90,code=sm_90",
        "RuntimeError: FlashAttention only supports Ampere GPUs or newer.",
        "FA2 needs compute capability 8.0+ (Ampere or newer)",
        # two different GPUs: which one failed is not said
        "NVIDIA A100-SXM4-80GB with CUDA capability sm_80 ok\nNVIDIA GeForce RTX 5090 with CUDA capability sm_120 is"
        " not compatible",
    ],
)
def test_a_kernel_name_a_requirement_or_two_gpus_name_no_gpu(line: str) -> None:
    assert "sm_" not in explain_bytes(f"{line}\n{KILLED}".encode(), None).machine


def test_another_gpu_in_the_log_means_another_machine_and_the_fix_is_for_the_logs_gpu() -> None:
    # The same torch as the A100 target, but the log ran on an H100: the fix names the H100's arch.
    log = f"torch.__version__  = 2.8.0+cu128\n{NO_CODE}"
    expl = explain_bytes(log.encode(), target_env("a100"))
    assert not expl.origin.use_machine
    assert "NVIDIA H100 80GB HBM3 (sm_90) in the log, NVIDIA A100-SXM4-80GB here" in expl.origin.reason
    fix = expl.diagnoses[0].fix
    assert expl.diagnoses[0].code == "gpu-unsupported"
    assert "FLASH_ATTN_CUDA_ARCHS=90" in fix and "A100" not in fix and "=80" not in fix
    # On an H100 with that torch the log is this machine's: its fix is sized to it (MAX_JOBS).
    here = explain_bytes(log.replace("2.8.0+cu128", "2.11.0+cu130").encode(), target_env("h100"))
    assert here.origin.use_machine and "FLASH_ATTN_CUDA_ARCHS=90 MAX_JOBS=" in here.diagnoses[0].fix


def test_a_gpu_in_the_log_means_another_machine_where_this_one_has_no_gpu() -> None:
    # A login node without a GPU, its shared environment in a compute node's log: the log ran on a GPU, so
    # the login node's memory and CPUs (MAX_JOBS=1) are not the log's machine's.
    log = (
        '  File "/home/ana/envs/fa/lib/python3.11/site-packages/flash_attn/__init__.py", line 3\n'
        "UserWarning: NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current"
        " PyTorch installation.\n" + KILLED
    )
    env = target_env("cpu-box", python_executable="/home/ana/envs/fa/bin/python")
    expl = explain_bytes(log.encode(), env)
    assert not expl.origin.use_machine, expl.origin.reason
    assert "NVIDIA GeForce RTX 5090 (sm_120) in the log, no NVIDIA GPU here" in expl.origin.reason
    assert all("MAX_JOBS=1" not in d.fix and "this machine" not in d.fix for d in expl.diagnoses)
    # FlashAttention's own refusal ran on a GPU too.
    old = "RuntimeError: FlashAttention only supports Ampere GPUs or newer.\n" + log.split("\n", 1)[0]
    assert (
        "a GPU older than Ampere in the log, no NVIDIA GPU here"
        in explain_bytes(old.encode(), env).origin.reason
    )
    # A ROCm machine has GPUs NVML does not list: its log is not told apart by that.
    rocm = target_env("rocm-mi300", python_executable="/home/ana/envs/fa/bin/python", python="3.11")
    assert "no NVIDIA GPU" not in explain_bytes(log.encode(), rocm).origin.reason


def test_a_fix_from_the_logs_driver_alone_says_which_machine_it_is_for() -> None:
    # nvidia-smi's header and the error, nothing else: the fix names the log's driver, so it says whose.
    log = (
        "| NVIDIA-SMI 535.104.05             Driver Version: 535.104.05   CUDA Version: 12.2     |\n"
        "RuntimeError: The NVIDIA driver on your system is too old (found version 12020).\n"
    )
    for env in (target_env("h100"), None):
        expl = explain_bytes(log.encode(), env)
        assert expl.machine == "the machine in this log (driver 535.104.05)", expl.machine
        assert expl.diagnoses[0].fix.startswith(
            "For the machine in this log (driver 535.104.05): Driver 535.104.05 supports CUDA up to 12.2"
        ), expl.diagnoses[0].fix


def test_another_environment_whose_directory_starts_like_this_ones_is_not_this_one() -> None:
    # /home/ana/fa is this environment; /home/ana/fa-old (another venv, another torch) is not.
    env = target_env("h100", python_executable="/home/ana/fa/bin/python")
    log = TORCH_SYMBOL.replace("/home/u/venv/lib/python3.10", "/home/ana/fa-old/lib/python3.12").replace(
        "cpython-310", "cpython-312"
    )
    expl = explain_bytes(log.encode(), env, wheel_finder=lambda e, v: "never-used.whl")
    assert not expl.origin.use_machine, expl.origin.reason
    assert "never-used" not in expl.diagnoses[0].fix and "2.11.0" not in expl.diagnoses[0].fix
    assert explain_bytes(log.replace("fa-old", "fa").encode(), env).origin.use_machine


@pytest.mark.parametrize("other", ["/home/ana/faé", "/home/ana/fa€"])
def test_a_directory_whose_name_goes_on_in_a_non_ascii_letter_is_not_this_one(other: str) -> None:
    # /home/ana/faé is another environment than /home/ana/fa: only an ASCII letter after the name counted.
    env = target_env("h100", python_executable="/home/ana/fa/bin/python")
    log = TORCH_SYMBOL.replace("/home/u/venv/lib/python3.10", other + "/lib/python3.12")
    assert not explain_bytes(log.replace("cpython-310", "cpython-312").encode(), env).origin.use_machine


@pytest.mark.parametrize("codec", ["utf-8", "cp1252"])
def test_a_directory_whose_name_a_non_ascii_letter_goes_before_is_not_this_one(codec: str) -> None:
    # /dataé/home/ana/fa is another environment than /home/ana/fa: a non-ASCII byte after the name made
    # it another name, one before it did not.
    env = target_env("h100", python_executable="/home/ana/fa/bin/python")
    log = TORCH_SYMBOL.replace("/home/u/venv/lib/python3.10", "/dataé/home/ana/fa/lib/python3.12")
    assert not explain_bytes(log.replace("cpython-310", "cpython-312").encode(codec), env).origin.use_machine


@pytest.mark.parametrize("quotes", ["“”", "‘’"])
def test_a_directory_in_a_code_pages_typographic_quotes_is_named(quotes: str) -> None:
    # A cp1252 closing quote (0x94) right after the name went on it as a letter would: "“/home/ana/fa”" in a
    # log saved as "ANSI" no longer named /home/ana/fa. Quotes around the name are no part of it.
    env = target_env("h100", python_executable="/home/ana/fa/bin/python")
    log = f"{TORCH_SYMBOL.replace('cpython-310', 'cpython-312')}\nthe environment is {quotes[0]}/home/ana/fa{quotes[1]}"
    assert explain_bytes(log.encode("cp1252"), env).origin.use_machine, quotes
    # In cp437 the same byte is ö: /home/ana/faö/lib is another directory.
    other = TORCH_SYMBOL.replace("/home/u/venv/lib/python3.10", "/home/ana/faö/lib/python3.12")
    assert not explain_bytes(
        other.replace("cpython-310", "cpython-312").encode("cp437"), env
    ).origin.use_machine


def test_another_gpu_of_the_same_architecture_means_another_machine() -> None:
    # An H100's log with the H200 target's torch and Python: both GPUs are sm_90, but the log's is not this
    # machine's (the reason said "NVIDIA H100 80GB HBM3 (sm_90) in the log and here", and the fixes named
    # the H200 machine's memory and wheel).
    log = (
        "torch.__version__  = 2.9.1+cu128\nPython 3.12.3\n"
        + NO_CODE.replace("the smoke", "smoke")
        + "\n"
        + KILLED
    )
    expl = explain_bytes(log.encode(), target_env("h200"), bundled_finder())
    assert not expl.origin.use_machine, expl.origin.reason
    assert "NVIDIA H100 80GB HBM3 (sm_90) in the log, NVIDIA H200 here" in expl.origin.reason
    assert all("240 GB" not in d.fix and "this machine" not in d.fix for d in expl.diagnoses)
    # The same GPU named as NVML names it: this machine's.
    assert explain_bytes(
        log.replace("H100 80GB HBM3", "H200").encode(), target_env("h200")
    ).origin.use_machine
