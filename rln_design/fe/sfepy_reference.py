"""SfePy reference solution of the periodic voxel problem: an independent third-party cross-check.

The same boundary-value problem as :func:`rln_design.fe.solver.solve_fe`, set up with SfePy the way
PyMKS's ``solve_fe`` (``pymks/fmks/data/elastic_fe.py``) does it, but with Q1 (trilinear) instead of
Q2 elements so that the discretisation is exactly ours (one hex8 per voxel, full integration):
the total displacement ``u`` on the box ``[0, nx] x [0, ny] x [0, nz]`` (voxel edge 1) satisfies

    div(C(x) : eps(u)) = 0,
    u(x + L_y e_y) = u(x),  u(x + L_z e_z) = u(x),                 (periodic in y and z)
    u_y, u_z(x + L_x e_x) = u_y, u_z(x),
    u_x(x + L_x e_x) = u_x(x) + eps_xx L_x,                        (shifted periodic in x)

with the corners on x = 0 fixed (u = 0) and u_x = eps_xx L_x on the x = L_x corners (removes the
rigid translations). Then ``<eps> = diag(eps_xx, 0, 0)`` and the fluctuation is periodic, which is
the problem solve_fe solves with eps_bar = diag(eps_xx, 0, 0).

SfePy is optional (it compiles from source); install it without its VTK/pyvista dependencies::

    pip install --no-deps sfepy meshio sympy pyparsing pyamg

SfePy realises the shifted periodicity with a ``shifted_periodic`` linear-combination condition
and the plain periodicity with EPBCs. Both eliminate the DOFs of their first region; so that no DOF
is constrained twice, the shifted condition ties only the x = L_x nodes with y < L_y and z < L_z
(the others follow by the y/z EPBCs).
"""

from __future__ import annotations

import dataclasses

import numpy as np

INSTALL = "pip install --no-deps sfepy meshio sympy pyparsing pyamg"


def _import_sfepy():
    try:
        import sfepy  # noqa: F401
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"solve_sfepy needs the optional SfePy package; install it with `{INSTALL}` "
            "(it compiles from source, a few minutes)"
        ) from error


def solve_sfepy(
    structure,
    contrast: float,
    e_soft: float = 120.0,
    nu: float = 0.3,
    eps_xx: float = 1e-3,
    order: int = 1,
    *,
    linear_solver: str = "direct",
    rtol: float = 1e-12,
) -> np.ndarray:
    """Element-average strain of the periodic voxel problem computed with SfePy.

    Returns the strain field ``eps`` with ``div(C : eps) = 0``, ``<eps> = diag(eps_xx, 0, 0)`` and a
    periodic fluctuation (PyMKS boundary conditions, see the module docstring), discretised with one
    Lagrange hexahedron of ``order`` per voxel (``order=1``: the same hex8 problem as solve_fe).

    Args:
        structure: ``(x, y, z)`` array of {0, 1} (1 = stiff); x is the load direction.
        contrast: E_hard / E_soft.
        e_soft: modulus of phase 0.
        nu: Poisson ratio of both phases.
        eps_xx: imposed macroscopic strain eps_xx.
        order: polynomial order of the displacement field (1 = Q1, 2 = Q2 as in PyMKS).
        linear_solver: ``"direct"`` (SuperLU via ``ls.scipy_direct``; fine up to ~15^3 with Q1) or
            ``"amg"`` (pyamg smoothed-aggregation preconditioned CG to ``rtol``).
        rtol: relative residual of the AMG-CG solve.

    Returns:
        ``(6, x, y, z)`` element-average strain, tensor components in Voigt order
        (xx, yy, zz, yz, xz, xy), like ``solve_fe(...).strain``.

    Raises:
        ImportError: SfePy is not installed (the message names the install command).
        ValueError: bad input.
    """
    structure = np.asarray(structure)
    if structure.ndim != 3 or not np.all(np.isin(np.unique(structure), (0, 1))):
        raise ValueError(f"structure must be a binary (x, y, z) array; got shape {structure.shape}")
    if linear_solver not in ("direct", "amg"):
        raise ValueError(f"linear_solver must be 'direct' or 'amg'; got {linear_solver!r}")
    _import_sfepy()
    grid = np.array(structure.shape)
    lengths = grid.astype(float)  # voxel edge 1, box [0, L]
    domain, omega = _voxel_domain(grid)
    regions = _Regions.of_box(domain, lengths)
    moduli = np.where(np.asarray(structure, dtype=bool), contrast * e_soft, e_soft)  # (x, y, z)
    problem = _problem(omega, moduli, nu, order, regions, shift=eps_xx * lengths[0])
    problem.set_solver(_newton(linear_solver, rtol))
    problem.solve(save_results=False)
    return _element_strain(problem, domain, grid, order)


def _voxel_domain(grid: np.ndarray):
    """``(domain, omega)``: one hexahedron per voxel on the box ``[0, grid]`` and its whole region."""
    from sfepy.base.base import output
    from sfepy.discrete.fem import FEDomain
    from sfepy.mesh.mesh_generators import gen_block_mesh

    output.set_output(quiet=True)
    lengths = grid.astype(float)
    mesh = gen_block_mesh(lengths, grid + 1, lengths / 2, name="voxels", verbose=False)
    domain = FEDomain("domain", mesh)
    return domain, domain.create_region("Omega", "all")


@dataclasses.dataclass(frozen=True)
class _Regions:
    """The vertex sets the boundary conditions act on (SfePy regions of the box ``[0, L]``).

    Attributes:
        faces: ``{"x-": ..., "x+": ..., "y-": ...}`` the six faces.
        shifted_plus, shifted_minus: the x = L_x and x = 0 vertices with y < L_y and z < L_z, tied
            by the shifted periodicity.
        fixed: the corners on x = 0 (u = 0).
        pulled: the corners on x = L_x (u_x = eps_xx L_x).
    """

    faces: dict
    shifted_plus: object
    shifted_minus: object
    fixed: object
    pulled: object

    @classmethod
    def of_box(cls, domain, lengths: np.ndarray, tol: float = 1e-6) -> _Regions:
        def on(axis, value):
            return lambda c: np.abs(c[:, axis] - value) < tol

        faces = {}
        for axis, label in enumerate("xyz"):
            faces[label + "-"] = _vertex_region(domain, f"{label}_minus", on(axis, 0.0))
            faces[label + "+"] = _vertex_region(domain, f"{label}_plus", on(axis, lengths[axis]))
        inner = lambda c: (c[:, 1] < lengths[1] - tol) & (c[:, 2] < lengths[2] - tol)  # noqa: E731
        corner = lambda c: (  # noqa: E731
            (on(1, 0.0)(c) | on(1, lengths[1])(c)) & (on(2, 0.0)(c) | on(2, lengths[2])(c))
        )
        return cls(
            faces=faces,
            shifted_plus=_vertex_region(domain, "x_plus_inner", lambda c: on(0, lengths[0])(c) & inner(c)),
            shifted_minus=_vertex_region(domain, "x_minus_inner", lambda c: on(0, 0.0)(c) & inner(c)),
            fixed=_vertex_region(domain, "fixed_corners", lambda c: on(0, 0.0)(c) & corner(c)),
            pulled=_vertex_region(domain, "pulled_corners", lambda c: on(0, lengths[0])(c) & corner(c)),
        )


def _vertex_region(domain, name: str, select):
    """The region of the vertices whose coordinates ``select`` (``(n, 3) -> (n,) bool``) picks."""
    from sfepy.discrete import Function, Functions

    def fun(coors, domain=None):
        return np.flatnonzero(select(coors))

    functions = Functions([Function(f"{name}_fun", fun)])
    return domain.create_region(name, f"vertices by {name}_fun", "vertex", functions=functions)


def _problem(omega, moduli: np.ndarray, nu: float, order: int, regions: _Regions, shift: float):
    """The SfePy problem ``div(C(x) : eps(u)) = 0`` with the module docstring's conditions.

    Args:
        omega: the whole-domain region.
        moduli: `(x, y, z)` Young's modulus of each voxel.
        nu: Poisson ratio.
        order: polynomial order of ``u``.
        regions: where the conditions act.
        shift: ``eps_xx L_x``, the jump of ``u_x`` across the box.
    """
    from sfepy.discrete import Equation, Equations, FieldVariable, Function, Integral, Material, Problem
    from sfepy.discrete.fem import Field
    from sfepy.mechanics.matcoefs import stiffness_from_youngpoisson
    from sfepy.terms import Term

    field = Field.from_args("displacement", np.float64, "vector", omega, approx_order=order)
    u = FieldVariable("u", "unknown", field)
    v = FieldVariable("v", "test", field, primary_var_name="u")

    def material(ts, coors, mode=None, **kwargs):
        if mode != "qp":
            return None
        # quadrature points lie strictly inside their voxel: floor gives the voxel index
        index = tuple(np.clip(np.floor(coors).astype(int), 0, np.array(moduli.shape) - 1).T)
        return {"D": stiffness_from_youngpoisson(3, moduli[index], nu)}  # (n_qp, 6, 6)

    m = Material("m", function=Function("material", material))
    integral = Integral("i", order=2 * order)
    term = Term.new("dw_lin_elastic(m.D, v, u)", integral, omega, m=m, v=v, u=u)
    equations = Equations([Equation("balance", term)])
    functions, ebcs, epbcs, lcbcs = _conditions(regions, shift)
    problem = Problem("periodic_voxels", equations=equations, functions=functions)
    problem.set_bcs(ebcs=ebcs, epbcs=epbcs, lcbcs=lcbcs)
    return problem


def _conditions(regions: _Regions, shift: float):
    """``(functions, ebcs, epbcs, lcbcs)``: fixed and pulled corners, plain periodicity (EPBCs) and
    the shifted periodicity of ``u_x`` in x (a linear combination)."""
    from sfepy.discrete import Function, Functions
    from sfepy.discrete.conditions import Conditions, EssentialBC, LinearCombinationBC, PeriodicBC
    import sfepy.discrete.fem.periodic as periodic

    def shift_fun(ts, coors, region=None):
        return np.full(len(coors), shift)

    functions = Functions([
        Function("match_x_plane", periodic.match_x_plane),
        Function("match_y_plane", periodic.match_y_plane),
        Function("match_z_plane", periodic.match_z_plane),
        Function("shift", shift_fun),
    ])
    faces = regions.faces
    # EPBCs eliminate the DOFs of their first region: the + faces follow the - faces
    epbcs = Conditions([
        PeriodicBC(f"per_{label}", [faces[label + "+"], faces[label + "-"]], dofs, match=f"match_{label}_plane")
        for label, dofs in (("y", {"u.all": "u.all"}), ("z", {"u.all": "u.all"}), ("x", {"u.[1,2]": "u.[1,2]"}))
    ])
    ebcs = Conditions([
        EssentialBC("fix", regions.fixed, {"u.all": 0.0}),
        EssentialBC("pull", regions.pulled, {"u.0": shift}),
    ])
    lcbcs = Conditions([
        LinearCombinationBC("shifted_x", [regions.shifted_plus, regions.shifted_minus], {"u.0": "u.0"},
                            Function("match_x_plane", periodic.match_x_plane), "shifted_periodic",
                            arguments=(Function("shift", shift_fun),)),
    ])
    return functions, ebcs, epbcs, lcbcs


def _newton(linear_solver: str, rtol: float):
    """One Newton step with the chosen linear solver: the problem is linear, so that is the solve."""
    from sfepy.solvers.nls import Newton

    return Newton({"i_max": 1, "eps_a": 1e-30, "eps_r": 1.0}, lin_solver=_linear_solver(linear_solver, rtol))


def _element_strain(problem, domain, grid: np.ndarray, order: int) -> np.ndarray:
    """The solved problem's element-average strain as `(6, x, y, z)` in our Voigt order."""
    strain = problem.evaluate(
        f"ev_cauchy_strain.{2 * order}.Omega(u)", mode="el_avg", copy_materials=False
    )
    strain = strain.reshape(-1, 6)  # (cells, 6) in SfePy order 11, 22, 33, 12, 13, 23
    strain[:, 3:] *= 0.5  # SfePy's strain vector holds engineering shears gamma = 2 eps
    # map SfePy cells to our (x, y, z) array axes through their centroids
    centroids = domain.cmesh.get_centroids(3)
    cell = tuple(np.floor(centroids).astype(int).T)
    out = np.empty((6, *grid))
    for ours, theirs in enumerate((0, 1, 2, 5, 4, 3)):  # ours: xx, yy, zz, yz, xz, xy
        out[ours][cell] = strain[:, theirs]
    return out


def _linear_solver(kind: str, rtol: float):
    if kind == "direct":
        from sfepy.solvers.ls import ScipyDirect

        return ScipyDirect({})
    from sfepy.solvers.ls import PyAMGKrylovSolver

    return PyAMGKrylovSolver({"method": "cg", "eps_r": rtol, "i_max": 2000})
