"""st.nn.Module and st.nn.Parameter, as torch.nn's: a module registers the parameters, buffers and
submodules assigned to its attributes, and gives them out by dotted name."""

from collections import OrderedDict

from .. import _C
from ..autograd import no_grad


class Parameter(_C.Tensor):
    """A tensor that is a module parameter: it requires grad (by default) and a Module registers it
    when assigned to an attribute. It shares its data with the tensor it was made from."""

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = _C.empty(0)
        super().__init__(data.detach())
        self.requires_grad_(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def _is_module(value):
    return isinstance(value, Module)


def _is_python_module(value):
    # A C++ layer is walked through its own methods, not Module's internals.
    return isinstance(value, Module) and not isinstance(value, _C.nn.CppModule)


class _ModuleType(type):
    """Makes the C++ layers (st.nn.Linear, ...) count as st.nn.Module in isinstance and
    issubclass, as torch.nn's layers do: they have Module's methods but a C++ base class."""

    def __instancecheck__(cls, obj):
        return type.__instancecheck__(cls, obj) or (cls is Module and isinstance(obj, _C.nn.CppModule))

    def __subclasscheck__(cls, sub):
        return type.__subclasscheck__(cls, sub) or (
            cls is Module and isinstance(sub, type) and issubclass(sub, _C.nn.CppModule))


class Module(metaclass=_ModuleType):
    """Base class of all modules. Subclasses set parameters and submodules as attributes in
    __init__ and define forward(); calling the module runs forward."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # Attribute registration ---------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif _is_module(value):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()) and isinstance(value, _C.Tensor):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        # Called only when normal lookup fails: parameters, buffers and modules live in tables.
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Registers `param` (a Parameter, or None) under `name`."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter '{name}' "
                            "(st.nn.Parameter or None expected)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor):
        """Registers a tensor that is module state but not a parameter (saved in state_dict)."""
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def add_module(self, name, module):
        """Registers a submodule under `name`."""
        self._modules[name] = module

    # Traversal ----------------------------------------------------------------------------
    def named_modules(self, prefix=""):
        """This module and its descendants, by dotted name ('' for this one)."""
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            child_prefix = f"{prefix}.{name}" if prefix else name
            if _is_python_module(child):
                yield from child.named_modules(child_prefix)
            else:
                yield child_prefix, child

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_tensors(self, kind, prefix, recurse):
        seen = set()
        table = self._parameters if kind == "parameters" else self._buffers
        for name, t in table.items():
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                yield (f"{prefix}.{name}" if prefix else name), t
        if not recurse:
            return
        for name, child in self.named_children():
            child_prefix = f"{prefix}.{name}" if prefix else name
            if _is_python_module(child):
                yield from child._named_tensors(kind, child_prefix, True)
            else:
                for sub, t in getattr(child, f"named_{kind}")():
                    yield f"{child_prefix}.{sub}", t

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, parameter) pairs of this module and (with recurse) its descendants."""
        return self._named_tensors("parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        return self._named_tensors("buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # State --------------------------------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers by dotted name, detached but sharing storage."""
        out = OrderedDict()
        for name, t in self.named_parameters():
            out[name] = t.detach()
        for name, t in self.named_buffers():
            out[name] = t.detach()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copies each entry into the parameter or buffer of the same name. With `strict`, missing
        or unexpected names raise; a shape mismatch always does. Returns (missing, unexpected)."""
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        with no_grad():
            for name, target in own.items():
                if name not in state_dict:
                    continue
                value = state_dict[name]
                if tuple(value.shape) != tuple(target.shape):
                    raise _C.ShapeError(f"[load_state_dict] '{name}' has shape {list(value.shape)} "
                                        f"in the state dict but {list(target.shape)} in the module")
                target.copy_(value)
        return missing, unexpected

    def train(self, mode=True):
        """Training mode (dropout active) for this module and its descendants; returns self."""
        object.__setattr__(self, "training", mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Clears (or zeroes) the gradients of all parameters."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                with no_grad():
                    p.grad.zero_()

    def _apply(self, convert):
        with no_grad():
            for table in (self._parameters, self._buffers):
                for name, t in table.items():
                    if t is None:
                        continue
                    moved = convert(t)
                    if moved is t:
                        continue
                    if isinstance(t, Parameter):
                        moved = Parameter(moved, t.requires_grad)
                    table[name] = moved
        return self

    def to(self, *args, **kwargs):
        """Moves parameters and buffers to a device and/or converts their floating dtype."""

        def convert(t):
            if not t.is_floating_point():
                kw = {k: v for k, v in kwargs.items() if k != "dtype"}
                args_ = [a for a in args if not isinstance(a, _C.dtype)]
                return t.to(*args_, **kw)
            return t.to(*args, **kwargs)

        for child in self.children():
            child.to(*args, **kwargs)
        return self._apply(convert)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(f"cuda:{device or 0}")

    def float(self):
        return self.to(_C.dtype.float32)

    def double(self):
        return self.to(_C.dtype.float64)

    def apply(self, fn):
        """Calls fn on every descendant module, then on this one; returns self."""
        for child in self.children():
            child.apply(fn) if _is_python_module(child) else fn(child)
        fn(self)
        return self

    # Running ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._modules) |
                      set(self._buffers))


class Sequential(Module):
    """Runs its modules in order; they are named '0', '1', ... (or by the keys of an OrderedDict)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        values = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*values[i])
        return values[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleList(Module):
    """A list of modules, each registered (named '0', '1', ...)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
