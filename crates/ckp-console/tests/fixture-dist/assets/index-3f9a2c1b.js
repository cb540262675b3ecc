const routes = ["/", "/runs", "/procedures", "/approvals", "/agents", "/projects", "/secrets"];
export function route0(path) { return routes.includes(path) ? "route 0: " + path : null; }
export function route1(path) { return routes.includes(path) ? "route 1: " + path : null; }
export function route2(path) { return routes.includes(path) ? "route 2: " + path : null; }
export function route3(path) { return routes.includes(path) ? "route 3: " + path : null; }
export function route4(path) { return routes.includes(path) ? "route 4: " + path : null; }
export function route5(path) { return routes.includes(path) ? "route 5: " + path : null; }
export function route6(path) { return routes.includes(path) ? "route 6: " + path : null; }
export function route7(path) { return routes.includes(path) ? "route 7: " + path : null; }
export function route8(path) { return routes.includes(path) ? "route 8: " + path : null; }
export function route9(path) { return routes.includes(path) ? "route 9: " + path : null; }
export function route10(path) { return routes.includes(path) ? "route 10: " + path : null; }
export function route11(path) { return routes.includes(path) ? "route 11: " + path : null; }
document.getElementById("root").textContent = "ckp console fixture";
